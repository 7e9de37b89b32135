"""How processes are named in every format: a name keeps its arguments' paths, drops the
directory of a script, and a process title is named without its colon."""

from __future__ import annotations

from waitchain.names import program, short_cmdline


def test_names_keep_the_paths_of_arguments() -> None:
    assert short_cmdline("flock /tmp/l sleep 1000") == "flock /tmp/l sleep 1000"
    assert short_cmdline("/usr/bin/cat /tmp/wc/bigfile") == "cat /tmp/wc/bigfile"
    assert short_cmdline("postgres: 15/main: postgres [local] UPDATE waiting", 80) \
        == "postgres: 15/main: postgres [local] UPDATE waiting"
    assert short_cmdline("sshd: root@pts/0") == "sshd: root@pts/0"


def test_names_drop_the_directory_of_a_script() -> None:
    assert short_cmdline("/usr/bin/python3 /srv/app/server.py -v") == "python3 server.py -v"
    assert program("/usr/bin/python3 /srv/app/server.py -v") == "server.py"
    assert program("/bin/bash /opt/x/run.sh") == "run.sh"


def test_a_process_title_is_named_without_its_colon() -> None:
    assert program("nginx: worker process") == "nginx"
    assert program("postgres: 15/main: postgres postgres [local] UPDATE waiting") == "postgres"


def test_a_script_read_from_an_fd_is_named_by_its_interpreter() -> None:
    assert short_cmdline("bash /dev/fd/3") == "bash /dev/fd/3"
    assert program("bash /dev/fd/3") == "bash"
