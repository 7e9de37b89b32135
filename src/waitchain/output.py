"""Files the user names for output (--report, watch --metrics): opened so that no path can
hang waitchain or make it write where it should not. waitchain runs as root, from cron or
a watchdog, on machines already in trouble:

* a new file is created with O_CREAT|O_EXCL|O_NOFOLLOW|O_NONBLOCK, mode 0600 (a report
  names processes and command lines): a FIFO, a device or a symlink at the path is never
  opened (EEXIST), so open() cannot block on a FIFO with no reader;
* with `force`, an existing path is replaced only if it is a regular file: the new text is
  written to a temporary file beside it (created the same way) and renamed over it at the
  end, never written through it; a FIFO, socket, device, directory or symlink is refused;
* the descriptor is checked with fstat to be a regular file before anything is written.

`open_output` is the one way in; an error is an OutputRefused (a ReportError: exit code
2, with its fixes), raised before the diagnosis so that a bad path costs nothing."""

from __future__ import annotations

import errno
import os
import stat

from .errors import ReportError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional

MODE = 0o600
CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
         (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
         (stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symbolic link"))


class OutputRefused(ReportError):
    """An output path waitchain will not write: not a regular file, or it exists and
    overwriting was not asked for. A bad argument (exit code 2), found before the run."""

    def __init__(self, path: str, why: str, exc: Optional[OSError] = None, option: str = "--report") -> None:
        super().__init__(path, exc, why)
        self.option = option
        self.kind_refused = exc is None

    def fixes(self) -> List[str]:
        if self.errno == errno.EEXIST and not self.kind_refused:
            return ["fix: give a new file name, or add --force to replace it"]
        if self.kind_refused:
            return [f"fix: give {self.option} the path of a new or regular file, e.g. "
                    f"{self.option} /tmp/incident.html (a pipe or device is never written)"]
        return super().fixes()


class Output:
    """An output file opened by open_output: write() the whole text, then commit()
    (renames the temporary file over the path with `force`); discard() removes what was
    created if the text is never written."""

    def __init__(self, path: str, fd: int, temp: str) -> None:
        self.path = path
        self.fd = fd
        self.temp = temp  # with force: the file written, renamed over path by commit()
        self.done = False

    def write(self, data: bytes) -> None:
        """All of `data`, then the file is closed; raises OSError."""
        try:
            while data:
                data = data[os.write(self.fd, data):]
        finally:
            os.close(self.fd)
            self.fd = -1
        self.commit()

    def commit(self) -> None:
        if self.temp:
            os.replace(self.temp, self.path)
        self.done = True

    def discard(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if not self.done:
            try:
                os.unlink(self.temp or self.path)
            except OSError:
                pass


def kind(mode: int) -> str:
    """What a non-regular file is, in words ("" for a regular file)."""
    return next((words for test, words in KINDS if test(mode)), "" if stat.S_ISREG(mode) else "not a regular file")


def open_output(path: str, force: bool = False, option: str = "--report") -> Output:
    """Open `path` for output as the module says; raises OutputRefused."""
    path = os.path.abspath(path)
    try:
        st: Optional[os.stat_result] = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise OutputRefused(path, exc.strerror or str(exc), exc, option) from None
    if st is not None and kind(st.st_mode):
        raise OutputRefused(path, f"it is {kind(st.st_mode)}, not a regular file", option=option)
    if st is not None and not force:
        raise OutputRefused(path, f"the file exists ({_force(option)} replaces it)",
                            FileExistsError(errno.EEXIST, "File exists"), option)
    try:
        if st is not None:  # force, over a regular file: a new file beside it, renamed at the end
            temp = _temporary(os.path.dirname(path), os.path.basename(path))
            return _checked(Output(path, os.open(temp, CREATE, MODE), temp))
        return _checked(Output(path, os.open(path, CREATE, MODE), ""))
    except FileExistsError as exc:  # created by someone else since the lstat
        raise OutputRefused(path, f"the file exists ({_force(option)} replaces it)", exc, option) from None
    except OSError as exc:
        raise OutputRefused(path, exc.strerror or str(exc), exc, option) from None


def _force(option: str) -> str:
    return "--force" if option == "--report" else "removing it"


def _temporary(directory: str, base: str) -> str:
    """A fresh name beside the target (not created: O_EXCL creates it)."""
    return os.path.join(directory, f".{base}.{os.getpid()}.{os.urandom(4).hex()}.tmp")


def _checked(out: Output) -> Output:
    """The descriptor is a regular file (nothing else could have been created, but a file
    system can surprise): else closed, removed, refused. O_NONBLOCK is cleared."""
    st = os.fstat(out.fd)
    if not stat.S_ISREG(st.st_mode):
        out.discard()
        raise OutputRefused(out.path, f"it is {kind(st.st_mode)}, not a regular file")
    os.set_blocking(out.fd, True)
    os.fchmod(out.fd, MODE)  # whatever the umask
    return out
