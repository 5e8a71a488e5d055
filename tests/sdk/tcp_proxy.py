"""A threaded TCP forwarder the tests put between weir and one of its stores, to make that
store unreachable for a while without touching the (shared) server behind it.

    proxy = TcpProxy('127.0.0.1', 5432)        # listens on 127.0.0.1:<free port>
    url = f'postgres://root@127.0.0.1:{proxy.port}/db'
    proxy.cut()                                # the store is gone
    proxy.restore()                            # and back
    proxy.close()

What `cut()` does to the connections that are open at that moment, and to new ones while the
cut lasts, depends on the mode (given to the constructor or to `cut`):

* `reset` (default): open connections are aborted with a TCP RST; new ones are accepted and
  reset at once (a server that crashed and whose port still answers, or a restarting pooler).
* `close`: open connections are aborted with a RST; new ones are accepted and closed with a
  clean FIN before any byte is read or written.
* `refuse`: open connections are aborted; the listening socket is closed, so new connections
  get "connection refused" (a stopped server on a reachable host). `restore` listens again on
  the same port.
* `hang`: a network partition. Open connections stay open but nothing flows through them
  (bytes are held until `restore`); new connections are accepted and left unanswered, and
  `restore` connects them through (as a retransmitted SYN would once the partition heals).

Nothing here touches the target: cutting only ever closes the proxy's own sockets.
"""
import errno
import select
import socket
import struct
import threading
import time
from typing import List, Optional, Set

MODES = ('reset', 'close', 'refuse', 'hang')
_BUFFER = 65536
_CONNECT_TIMEOUT_S = 5.0


def _abort(sock: Optional[socket.socket]) -> None:
    """Closes a socket with a RST (SO_LINGER 0), waking any thread blocked in recv on it."""
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    except OSError:
        pass
    try:
        # SHUT_RD sends nothing to the peer but makes a recv blocked in another thread return,
        # so the close below really releases the socket (and sends the RST) now.
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def _close(sock: Optional[socket.socket]) -> None:
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class _Connection:
    """One client connection and its upstream, pumped by two threads."""

    def __init__(self, proxy: 'TcpProxy', client: socket.socket, upstream: socket.socket):
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.lock = threading.Lock()
        self.finished = 0
        self.aborted = False
        self.threads = [
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True,
                             name=f'tcp-proxy-{proxy.port}-up'),
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True,
                             name=f'tcp-proxy-{proxy.port}-down'),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                try:
                    data = src.recv(_BUFFER)
                except OSError:
                    self.abort()
                    return
                if not data:
                    # Half-close: pass the FIN on, keep the other direction open.
                    try:
                        dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    return
                # During a `hang` cut the bytes wait here until the cut is over (or the
                # connection is aborted by `close`).
                while not self.proxy._flowing.wait(0.1):
                    if self.aborted:
                        return
                if self.aborted:
                    return
                try:
                    dst.sendall(data)
                except OSError:
                    self.abort()
                    return
        finally:
            self._done()

    def _done(self) -> None:
        with self.lock:
            self.finished += 1
            last = self.finished == 2
        if last:
            _close(self.client)
            _close(self.upstream)
            self.proxy._forget(self)

    def abort(self) -> None:
        with self.lock:
            if self.aborted:
                return
            self.aborted = True
        _abort(self.client)
        _abort(self.upstream)
        self.proxy._forget(self)


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target_host`:`target_port` until `cut`."""

    def __init__(self, target_host: str, target_port: int, listen_host: str = '127.0.0.1',
                 port: int = 0, mode: str = 'reset'):
        if mode not in MODES:
            raise ValueError(f'unknown mode {mode!r}; one of {MODES}')
        self.target = (target_host, int(target_port))
        self.listen_host = listen_host
        self.mode = mode
        self._lock = threading.Lock()
        self._connections: Set[_Connection] = set()
        self._held: List[socket.socket] = []  # accepted during a `hang` cut
        self._cut_mode: Optional[str] = None
        self._flowing = threading.Event()
        self._flowing.set()
        self._stopping = threading.Event()
        self._listener: Optional[socket.socket] = None
        self.port = port
        # Counters, for the tests' reports.
        self.accepted = 0
        self.forwarded = 0
        self.refused_during_cut = 0
        self.upstream_failures = 0
        self._listen()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name=f'tcp-proxy-{self.port}')
        self._thread.start()

    # ----------------------------------------------------------------------------------------
    # Public interface

    @property
    def address(self) -> str:
        return f'{self.listen_host}:{self.port}'

    @property
    def is_cut(self) -> bool:
        return self._cut_mode is not None

    def open_connections(self) -> int:
        with self._lock:
            return len(self._connections)

    def cut(self, mode: Optional[str] = None) -> None:
        """Makes the target unreachable through the proxy (see the module doc for modes)."""
        mode = mode or self.mode
        if mode not in MODES:
            raise ValueError(f'unknown mode {mode!r}; one of {MODES}')
        with self._lock:
            if self._cut_mode is not None:
                return
            self._cut_mode = mode
            connections = list(self._connections)
        if mode == 'hang':
            self._flowing.clear()
            return
        for connection in connections:
            connection.abort()
        if mode == 'refuse':
            with self._lock:
                listener, self._listener = self._listener, None
            if listener is not None:
                # shutdown stops the listening at once, even while the accept thread is still
                # in select() on it (a bare close would only take effect when select returns,
                # and connections queued meanwhile would get a RST instead of a refusal).
                try:
                    listener.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                listener.close()

    def restore(self) -> None:
        """Forwards again; clients have to open new connections (cut ones stay closed)."""
        with self._lock:
            mode, self._cut_mode = self._cut_mode, None
            held, self._held = self._held, []
        if mode is None:
            return
        if mode == 'refuse':
            self._listen()
        self._flowing.set()
        for sock in held:
            self._forward(sock)

    def close(self) -> None:
        """Stops listening and aborts every connection."""
        self._stopping.set()
        with self._lock:
            listener, self._listener = self._listener, None
            connections = list(self._connections)
            held, self._held = self._held, []
        if listener is not None:
            listener.close()
        for connection in connections:
            connection.abort()
        for sock in held:
            _abort(sock)
        self._flowing.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> 'TcpProxy':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f'cut ({self._cut_mode})' if self.is_cut else 'forwarding'
        return (f'TcpProxy({self.address} -> {self.target[0]}:{self.target[1]}, {state}, '
                f'accepted={self.accepted}, forwarded={self.forwarded}, '
                f'refused_during_cut={self.refused_during_cut})')

    # ----------------------------------------------------------------------------------------
    # Internals

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 5.0
        while True:
            try:
                listener.bind((self.listen_host, self.port))
                break
            except OSError as error:
                # Re-listening on the same port after a `refuse` cut: retry briefly.
                if error.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    listener.close()
                    raise
                time.sleep(0.05)
        listener.listen(128)
        self.port = listener.getsockname()[1]
        with self._lock:
            self._listener = listener

    def _forget(self, connection: _Connection) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            listener = self._listener
            if listener is None:
                time.sleep(0.02)
                continue
            try:
                ready, _, _ = select.select([listener], [], [], 0.1)
            except (OSError, ValueError):
                continue  # closed under us (cut in `refuse` mode, or close)
            if not ready:
                continue
            try:
                client, _ = listener.accept()
            except OSError:
                continue
            self.accepted += 1
            self._handle(client)

    def _handle(self, client: socket.socket) -> None:
        with self._lock:
            mode = self._cut_mode
            if mode is not None:
                self.refused_during_cut += 1
            if mode == 'hang':
                self._held.append(client)  # under the lock, so `restore` cannot miss it
                return
        if mode is not None:
            if mode == 'close':
                _close(client)
            else:
                _abort(client)
            return
        self._forward(client)

    def _forward(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=_CONNECT_TIMEOUT_S)
            upstream.settimeout(None)
        except OSError:
            self.upstream_failures += 1
            _abort(client)
            return
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = _Connection(self, client, upstream)
        with self._lock:
            if self._cut_mode is not None and self._cut_mode != 'hang':
                # Cut while we were connecting upstream.
                _abort(client)
                _abort(upstream)
                return
            self._connections.add(connection)
        self.forwarded += 1
        connection.start()
