"""The container, pod and unit a cgroup path names (procfs/cgroup.container_of)."""

from __future__ import annotations

import pytest

from waitchain.model import Container
from waitchain.procfs.cgroup import container_of, parse_cgroup

H = "3f2a9c0d1b7e" + "0" * 52


@pytest.mark.parametrize("path, want", [
    (f"/system.slice/docker-{H}.scope", ("docker", H[:12], "", f"docker-{H}.scope")),
    (f"/docker/{H}", ("docker", H[:12], "", "")),
    (f"/machine.slice/libpod-{H}.scope/container", ("podman", H[:12], "", f"libpod-{H}.scope")),
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c3d4e_5f60_4a7b_8c9d_0e1f2a3b4c5d.slice/"
     f"cri-containerd-{H}.scope",
     ("containerd", H[:12], "1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d", f"cri-containerd-{H}.scope")),
    (f"/kubepods/besteffort/pod1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d/{H}",
     ("containerd", H[:12], "1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d", "")),
    (f"/kubepods.slice/kubepods-pod1b2c3d4e_5f60_4a7b_8c9d_0e1f2a3b4c5d.slice/crio-{H}.scope",
     ("cri-o", H[:12], "1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d", f"crio-{H}.scope")),
    ("/lxc.payload.web1/init.scope", ("lxc", "web1", "", "init.scope")),
    (f"/machine.slice/libpod-conmon-{H}.scope", ("", "", "", f"libpod-conmon-{H}.scope")),  # podman's monitor
    ("/system.slice/nginx.service", ("", "", "", "nginx.service")),
    ("/user.slice/user-1000.slice/session-3.scope", ("", "", "", "session-3.scope")),
])
def test_the_cgroup_path_names_the_container(path: str, want: tuple) -> None:
    found = container_of([path])
    assert found == Container(*want, cgroup=path)


@pytest.mark.parametrize("path", ["/", "/user.slice", "/process_api/c27bb848b5534a30a4cd976d615b05a6"])
def test_no_container_no_unit(path: str) -> None:
    """The root, a slice, a 32-hex group of some other manager: nothing named."""
    assert container_of([path]) is None


def test_from_a_cgroup_file() -> None:
    text = f"12:pids:/system.slice/docker-{H}.scope\n0::/system.slice/docker-{H}.scope\n"
    found = container_of(parse_cgroup(text))
    assert found is not None and (found.runtime, found.id) == ("docker", H[:12])
