"""Weir's Python fork server: imports the kfp runtime once, then forks one process per
lightweight Python step, so a step costs a fork instead of an interpreter start and imports.

Protocol (one JSON object per line): weir writes requests on stdin
  {"id": N, "source": "<component source>", "args": [...], "env": {...}, "cwd": "...", "log": "...", "name": "..."}
and reads on stdout {"id": N, "pid": P} when the step has started, {"id": N, "error": "..."} if
it could not start, and {"id": N, "exit": CODE} or {"id": N, "signal": S} when it ends.
Each step is its own process and session (so weir can stop its whole group), with its own
folder, environment and log, exactly as when it is started from its command line.
"""
import ctypes
import json
import os
import select
import signal
import sys
import tempfile

os.environ['_KFP_RUNTIME'] = 'true'
from kfp.dsl import executor_main  # noqa: E402  (imported once, inherited by every step)

OUT = sys.stdout.fileno()
IN = sys.stdin.fileno()


EXIT_FILE = '.weir-exit'


def send(message):
    os.write(OUT, (json.dumps(message) + '\n').encode())


def set_name(name):
    try:
        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except Exception:
        pass


CLONE_NEWNS = 0x00020000
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18


def private_mounts(binds):
    """A mount namespace of the step's own with each folder mounted where the step sees it
    (what weir's local driver does for steps it starts itself, crates/weir-driver-local/src/mounts.rs)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    if libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), 'unshare(CLONE_NEWNS)')
    if libc.mount(None, b'/', None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), 'mount --make-rprivate /')
    for folder, seen_at in binds:
        if libc.mount(folder.encode(), seen_at.encode(), None, MS_BIND | MS_REC, None) != 0:
            raise OSError(ctypes.get_errno(), f'mount --bind {folder} {seen_at}')


def child(request, wake_r, wake_w):
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.close(wake_r)
    os.close(wake_w)
    os.setsid()
    set_name(request.get('name', 'weir-step'))
    log = os.open(request['log'], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    code = 1
    try:
        if request.get('binds'):
            private_mounts(request['binds'])
        os.chdir(request['cwd'])
        os.environ.clear()
        os.environ.update(request['env'])
        os.environ['_KFP_RUNTIME'] = 'true'
        # What the SDK's launch script does: the component source in a module file.
        folder = tempfile.mkdtemp()
        module = os.path.join(folder, 'ephemeral_component.py')
        with open(module, 'w') as f:
            f.write(request['source'])
        sys.argv = ['kfp.dsl.executor_main', '--component_module_path', module, *request['args']]
        executor_main.executor_main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        # The exit status outlives weir: a weir restarted after this step ended reads it
        # instead of running the step again.
        try:
            with open(os.path.join(request['cwd'], EXIT_FILE), 'w') as f:
                f.write(str(code))
        except Exception:
            pass
        os._exit(code)


def main():
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    running = {}
    buffer = b''
    send({'ready': True, 'pid': os.getpid()})
    while True:
        readable, _, _ = select.select([IN, wake_r], [], [])
        if wake_r in readable:
            os.read(wake_r, 4096)
        if IN in readable:
            data = os.read(IN, 1 << 20)
            if not data:
                return  # weir went away; running steps carry on in their own sessions
            buffer += data
            while b'\n' in buffer:
                line, buffer = buffer.split(b'\n', 1)
                if not line.strip():
                    continue
                request = json.loads(line)
                try:
                    pid = os.fork()
                except OSError as e:
                    send({'id': request['id'], 'error': f'cannot fork the step: {e}'})
                    continue
                if pid == 0:
                    child(request, wake_r, wake_w)
                running[pid] = request['id']
                send({'id': request['id'], 'pid': pid})
        while running:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            step = running.pop(pid, None)
            if step is None:
                continue
            if os.WIFSIGNALED(status):
                send({'id': step, 'signal': os.WTERMSIG(status)})
            else:
                send({'id': step, 'exit': os.WEXITSTATUS(status)})


if __name__ == '__main__':
    main()
