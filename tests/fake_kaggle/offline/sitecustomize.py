"""Internet off, as in a Kaggle kernel: on PYTHONPATH, every IP connect or DNS lookup fails.

Each attempt is appended to $KIT_TEST_NET_LOG (when set) before the OSError, so a test can
also assert that nothing tried. Local IPC (AF_UNIX sockets, pipes) keeps working.
"""

import os
import socket
import traceback

_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex


def _refuse(what):
    log = os.environ.get("KIT_TEST_NET_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(f"{what}\n{''.join(traceback.format_stack(limit=8))}\n")
    raise OSError(101, f"network is unreachable (test: internet off): {what}")


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _refuse(f"connect {address!r}")
    return _connect(self, address)


def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _refuse(f"connect_ex {address!r}")
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    _refuse(f"getaddrinfo {host!r}")


socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
socket.getaddrinfo = getaddrinfo
