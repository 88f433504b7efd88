"""A seccomp filter that stops sandboxed programs from creating user namespaces and using the kernel keyring.

Inside a new user namespace an unprivileged process is "root" of its own mount namespace: it can
mount a tmpfs of any size (held in the host's memory, outside every size limit of the sandbox) and
rearrange what it sees. bubblewrap's own ``--disable-userns`` needs ``--unshare-user``, which, run as
root, would map the sandbox's user to the host's root; this filter gives the same guarantee to an
unprivileged ``nobody`` instead, the way Docker's and Flatpak's default profiles do:

* ``unshare`` and ``clone`` with ``CLONE_NEWUSER`` in their flags fail with EPERM;
* ``clone3`` (whose flags sit behind a pointer a filter cannot read) fails with ENOSYS, so the C
  library falls back to ``clone``;
* ``add_key``, ``request_key`` and ``keyctl`` fail with EPERM: the kernel keyring is not namespaced,
  so keys a program adds would outlive its sandbox (every sandbox runs as the same ``nobody``), pass
  data to the next program and use up that user's key quota (Docker's default profile refuses them
  for the same reason);
* system calls of another ABI (32-bit ``int 0x80`` on x86-64, x32) fail with ENOSYS, so the
  filter cannot be sidestepped through them.

Everything else is allowed. The program is classic BPF (``struct sock_filter``), the format
bubblewrap's ``--seccomp FD`` loads. Supported machines: x86-64 and aarch64; elsewhere
``syscall_filter`` returns None and the sandbox reports that this guarantee did not hold.
"""
from __future__ import annotations

import functools
import platform
import struct

CLONE_NEWUSER = 0x10000000
_EPERM = 1
_ENOSYS = 38

# (audit architecture, unshare, clone, clone3, first number of a foreign ABI sharing the architecture,
#  the keyring's add_key, request_key, keyctl)
_SYSCALLS = {
    "x86_64": (0xC000003E, 272, 56, 435, 0x40000000, (248, 249, 250)),   # x32 numbers carry bit 30
    "aarch64": (0xC00000B7, 97, 220, 435, None, (217, 218, 219)),
}

_LD_W_ABS = 0x20     # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15        # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35        # BPF_JMP | BPF_JGE | BPF_K
_JSET_K = 0x45       # BPF_JMP | BPF_JSET | BPF_K
_RET_K = 0x06        # BPF_RET | BPF_K
_ALLOW = 0x7FFF0000  # SECCOMP_RET_ALLOW
_ERRNO = 0x00050000  # SECCOMP_RET_ERRNO | errno
# offsets in struct seccomp_data: nr, arch, then args[6] (the low 32 bits of args[0] on little endian)
_NR, _ARCH, _ARG0_LOW = 0, 4, 16


def _instruction(code: int, jump_true: int, jump_false: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jump_true, jump_false, k)


@functools.lru_cache(maxsize=None)
def syscall_filter(machine: str | None = None) -> bytes | None:
    """The filter for ``machine`` (default: this one), or None where it is not supported."""
    numbers = _SYSCALLS.get(machine or platform.machine())
    if numbers is None:
        return None
    arch, unshare, clone, clone3, foreign_from, keyring = numbers
    program = [
        (_LD_W_ABS, 0, 0, _ARCH),
        (_JEQ_K, 1, 0, arch),
        (_RET_K, 0, 0, _ERRNO | _ENOSYS),                # another architecture's ABI
        (_LD_W_ABS, 0, 0, _NR),
    ]
    if foreign_from is not None:
        program += [(_JGE_K, 0, 1, foreign_from), (_RET_K, 0, 0, _ERRNO | _ENOSYS)]
    for number in keyring:
        program += [(_JEQ_K, 0, 1, number), (_RET_K, 0, 0, _ERRNO | _EPERM)]
    program += [
        (_JEQ_K, 3, 0, unshare),                          # -> check the flags
        (_JEQ_K, 2, 0, clone),                            # -> check the flags
        (_JEQ_K, 5, 0, clone3),                           # -> ENOSYS
        (_RET_K, 0, 0, _ALLOW),
        (_LD_W_ABS, 0, 0, _ARG0_LOW),                     # unshare(flags) / clone(flags, ...)
        (_JSET_K, 0, 1, CLONE_NEWUSER),
        (_RET_K, 0, 0, _ERRNO | _EPERM),
        (_RET_K, 0, 0, _ALLOW),
        (_RET_K, 0, 0, _ERRNO | _ENOSYS),                 # clone3
    ]
    return b"".join(_instruction(*step) for step in program)
