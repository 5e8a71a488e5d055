"""Weir's Python fork server: imports the kfp runtime once, then forks one process per
lightweight Python step, so a step costs a fork instead of an interpreter start and imports.

Protocol (one JSON object per line): the server first says {"ready": true, "pid": P,
"step_pages": N} (N: the pages a spare copies before its step, 0 when it rehearses one instead);
then weir writes requests on stdin
  {"id": N, "source": "<component source>", "args": [...], "env": {...}, "cwd": "...", "log": "...", "name": "...",
   "module_dir": "<the component module's folder; a new temporary one when absent>",
   "output_file": "<where the executor output goes; where the executor input says when absent>"}
and reads on stdout {"id": N, "pid": P} when the step has started, {"id": N, "error": "..."} if
it could not start, and {"id": N, "exit": CODE} or {"id": N, "signal": S} when it ends. A step
reports its own exit as its last act, and the server reports it again when it reaps the process
(or only then, for a step killed by a signal); weir takes the first.
Each step is its own process and session (so weir can stop its whole group), with its own
folder, environment and log, exactly as when it is started from its command line.

What makes a step cheap, beyond the fork:
- The server runs one step of its own before it says it is ready, so the modules, caches and
  translations the executor loads on first use (argparse's, gettext's, logging's) are loaded
  once and inherited; `gc.freeze()` then keeps the collector of a step off the inherited objects.
- The next step's process is forked while the current one runs (the spare), and copies the pages
  a step writes to before it is asked: a forked Python copies a page of memory the first time it
  writes to it (every object it touches, through its reference count), about a thousand pages
  for a step, which the spare pays for off the step's path. Which pages those are is learnt once,
  by a probe forked at start that rehearses a step and reads which of its pages became its own
  (`/proc/self/pagemap`); each spare then has the kernel copy just those
  (`madvise(MADV_POPULATE_WRITE)`), which costs about 60 % of the CPU of rehearsing a step itself
  (bench/RESULTS.md). Where that cannot be (no pagemap, a kernel before 5.14), the spare
  rehearses a step. A spare that already has its step waiting skips both.
- kfp's executor_main parses its command line with a stand-in for argparse's parser that reads
  the plain `--option value` pairs of a compiled component itself and hands anything else to
  argparse (`PlainArgumentParser`).
"""
import argparse
import collections
import ctypes
import gc
import json
import mmap
import os
import select
import shutil
import signal
import sys
import tempfile
import types
import warnings

os.environ['_KFP_RUNTIME'] = 'true'
from kfp.dsl import executor_main  # noqa: E402  (imported once, inherited by every step)

class PlainArgumentParser:
    """What kfp's executor_main gets for `argparse.ArgumentParser`: it records the options
    declared on it and, when the command line is only `--option value` pairs of those options
    (what a compiled component's command is), answers `parse_known_args` itself with the
    Namespace argparse would give. Anything else (`--option=value`, an abbreviation, an unknown
    or repeated option, a value starting with `-`, a missing required option, an option that is
    not a plain string) goes to a real ArgumentParser made with the same calls, as does every
    other method. Building argparse's parser is about a third of the executor's own time in a
    forked step (its formatter, translations and terminal size are looked up per option), and
    the step's code and output are kfp's either way (bench/RESULTS.md)."""

    PLAIN = {'type', 'help', 'required'}

    def __init__(self, *args, **kwargs):
        self._made = (args, kwargs)
        self._options = []

    def add_argument(self, *flags, **kwargs):
        self._options.append((flags, kwargs))

    def _real(self):
        parser = argparse.ArgumentParser(*self._made[0], **self._made[1])
        for flags, kwargs in self._options:
            parser.add_argument(*flags, **kwargs)
        return parser

    def _plain(self, argv):
        # A parser made with more than a description may read its arguments otherwise (from
        # files, with other prefixes).
        if self._made[0] or set(self._made[1]) - {'description'}:
            return None
        options = {}
        for flags, kwargs in self._options:
            plain = len(flags) == 1 and flags[0].startswith('--') and kwargs.get('type', str) is str
            if not plain or set(kwargs) - self.PLAIN:
                return None
            options[flags[0]] = kwargs
        if len(argv) % 2:
            return None
        given = {}
        for flag, value in zip(argv[::2], argv[1::2]):
            if flag not in options or flag in given or value.startswith('-'):
                return None
            given[flag] = value
        if any(kwargs.get('required') and flag not in given for flag, kwargs in options.items()):
            return None
        return argparse.Namespace(**{flag[2:].replace('-', '_'): given.get(flag) for flag in options})

    def parse_known_args(self, args=None, namespace=None):
        plain = None if namespace is not None else self._plain(sys.argv[1:] if args is None else list(args))
        if plain is not None:
            return plain, []
        return self._real().parse_known_args(args, namespace)

    def __getattr__(self, name):
        # Only what a parser has: not this object's own fields before they are set (a copy).
        if name.startswith('_'):
            raise AttributeError(name)
        return getattr(self._real(), name)


class ArgparseForExecutor(types.ModuleType):
    """argparse, but for its ArgumentParser: what kfp's executor_main module sees as `argparse`."""

    ArgumentParser = PlainArgumentParser

    def __getattr__(self, name):
        return getattr(argparse, name)


executor_main.argparse = ArgparseForExecutor('argparse')


OUT = sys.stdout.fileno()
IN = sys.stdin.fileno()
EXIT_FILE = '.weir-exit'
LIBC = ctypes.CDLL(None, use_errno=True)
# Spares kept forked. One: with two (each with two steps' time to rehearse) a chain of steps was
# measured slower on two cores.
SPARES = 1

REHEARSAL_SOURCE = '''import kfp
from kfp import dsl
from kfp.dsl import *
from typing import *

def weir_rehearsal(x: int, text: str, items: List[int], data: Input[Artifact], out: Output[Artifact]) -> NamedTuple('Outputs', [('a', int), ('b', str)]):
    with open(data.path) as f:
        text += f.read()
    with open(out.path, 'w') as f:
        f.write(text)
    out.metadata['n'] = x + len(items)
    return (x + 1, text)
'''


# The rehearsal's files are thrown away: in memory where there is a tmpfs, so a step's rehearsal
# makes and frees no inode on the disk (on ext4 without a journal each freed inode slows the
# next allocations: bench/RESULTS.md, "Inode churn").
REHEARSAL_DIR = '/dev/shm' if os.path.isdir('/dev/shm') and os.access('/dev/shm', os.W_OK | os.X_OK) else None


def send(message):
    os.write(OUT, (json.dumps(message) + '\n').encode())


def rehearse():
    """Runs a step of weir's own in this process, its output thrown away, and leaves the
    process as it was (but for what the executor loaded and cached)."""
    saved = os.dup(1), os.dup(2)
    argv, cwd = sys.argv, os.getcwd()
    folder = tempfile.mkdtemp(prefix='weir-rehearsal-', dir=REHEARSAL_DIR)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        module = os.path.join(folder, 'ephemeral_component.py')
        with open(module, 'w') as f:
            f.write(REHEARSAL_SOURCE)
        with open(os.path.join(folder, 'data'), 'w') as f:
            f.write('!')
        artifact = lambda name: {'artifacts': [{  # noqa: E731
            'name': name, 'type': {'schemaTitle': 'system.Artifact'}, 'uri': 'file://' + os.path.join(folder, name)}]}
        executor_input = {
            'inputs': {'parameterValues': {'x': 1, 'text': 'a', 'items': [1]}, 'artifacts': {'data': artifact('data')}},
            'outputs': {
                'parameters': {n: {'outputFile': os.path.join(folder, n)} for n in ('a', 'b')},
                'artifacts': {'out': artifact('out')},
                'outputFile': os.path.join(folder, 'executor_output.json'),
            },
        }
        sys.argv = ['kfp.dsl.executor_main', '--component_module_path', module,
                    '--executor_input', json.dumps(executor_input), '--function_to_execute', 'weir_rehearsal']
        with warnings.catch_warnings():
            executor_main.executor_main()
    except BaseException:
        pass  # a rehearsal that fails only leaves the step slower
    finally:
        sys.argv = argv
        os.chdir(cwd)
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)
        import logging
        # A step configures its logging itself, to its own stdout.
        for handler in list(logging.root.handlers):
            logging.root.removeHandler(handler)
        sys.modules.pop('ephemeral_component', None)
        shutil.rmtree(folder, ignore_errors=True)


MADV_POPULATE_WRITE = 23  # Linux 5.14
PAGE = os.sysconf('SC_PAGE_SIZE')
# Set by the server at start: the (start, length) ranges of the pages a step writes to.
STEP_PAGES = None


def own_pages():
    """The ranges of pages of this process's private writable mappings that are its own (present
    and mapped by it alone: copied since the fork, or new), from /proc/self/pagemap (bit 63:
    present, bit 56: exclusively mapped)."""
    ranges = []
    with open('/proc/self/maps') as maps, open('/proc/self/pagemap', 'rb', buffering=0) as pagemap:
        for line in maps:
            fields = line.split()
            if fields[1] != 'rw-p' or fields[-1] in ('[vvar]', '[vdso]', '[vsyscall]'):
                continue
            start, end = (int(x, 16) for x in fields[0].split('-'))
            pagemap.seek(start // PAGE * 8)
            entries = memoryview(pagemap.read((end - start) // PAGE * 8)).cast('Q')
            first = None
            for i, entry in enumerate(entries):
                own = entry >> 63 and (entry >> 56) & 1
                if own and first is None:
                    first = i
                elif not own and first is not None:
                    ranges.append((start + first * PAGE, (i - first) * PAGE))
                    first = None
            if first is not None:
                ranges.append((start + first * PAGE, (len(entries) - first) * PAGE))
    return ranges


def can_copy_pages():
    """Whether this kernel copies pages on request (MADV_POPULATE_WRITE, Linux 5.14), tried on a
    page of its own rather than read from an error later (a range may fail for other reasons)."""
    LIBC.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    with mmap.mmap(-1, PAGE) as scratch:
        # The map's first byte (the temporary view of it is released at once, so the map closes).
        address = ctypes.addressof(ctypes.c_char.from_buffer(scratch))
        return LIBC.madvise(address, PAGE, MADV_POPULATE_WRITE) == 0


def learn_step_pages():
    """Forks a probe that rehearses a step and says which pages it then had of its own: those a
    step writes to (and the few it only read that no other process maps). None when it cannot
    tell, or when the kernel cannot copy them on request."""
    if not can_copy_pages():
        return None
    readable, writable = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(readable)
        os.close(writable)
        raise
    if pid == 0:
        try:
            os.close(readable)
            # Nothing of weir's pipes or the server's wake-up pipe: only its answer.
            signal.set_wakeup_fd(-1)
            devnull = os.open(os.devnull, os.O_RDWR)
            os.dup2(devnull, 0)
            os.dup2(devnull, 1)
            os.close(devnull)
            rehearse()
            write_all(writable, json.dumps(own_pages()).encode())
        finally:
            os._exit(0)
    os.close(writable)
    said = read_all(readable)
    os.waitpid(pid, 0)
    try:
        return json.loads(said) or None
    except ValueError:
        return None


def copy_step_pages(inbox):
    """Has the kernel copy the pages a step writes to, as writing to each would, until the step
    arrives (its process copies the rest as it writes to them). A range the kernel refuses (no
    longer mapped, or no longer writable) is skipped."""
    for i, (start, length) in enumerate(STEP_PAGES):
        LIBC.madvise(start, length, MADV_POPULATE_WRITE)
        if i % 32 == 31 and select.select([inbox], [], [], 0)[0]:
            return


def set_name(name):
    try:
        LIBC.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except Exception:
        pass


CLONE_NEWNS = 0x00020000
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18


def private_mounts(binds):
    """A mount namespace of the step's own with each folder mounted where the step sees it
    (what weir's local driver does for steps it starts itself, crates/weir-driver-local/src/mounts.rs)."""
    LIBC.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    if LIBC.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), 'unshare(CLONE_NEWNS)')
    if LIBC.mount(None, b'/', None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), 'mount --make-rprivate /')
    for folder, seen_at in binds:
        if LIBC.mount(folder.encode(), seen_at.encode(), None, MS_BIND | MS_REC, None) != 0:
            raise OSError(ctypes.get_errno(), f'mount --bind {folder} {seen_at}')


def spare(inbox, report, wake_r, wake_w):
    """The forked process of the next step: everything that does not depend on the step is done
    before it is asked for."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.close(wake_r)
    os.close(wake_w)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    if not select.select([inbox], [], [], 0)[0]:
        if STEP_PAGES:
            copy_step_pages(inbox)
        else:
            rehearse()
    request = read_all(inbox)
    if not request:
        os._exit(0)  # the server went away
    run_step(json.loads(request), report)


def write_output_to(path):
    """Has this process's executor write its output at `path` rather than where the executor
    input says. The executor takes the task root (`dsl.get_uri()`) from the named file's folder,
    which is left as it is: only the file moves, to the step's own folder, so a step making no
    artifact makes no folder in the store (kfp.dsl.executor.Executor.__init__)."""
    from kfp.dsl import executor

    init = executor.Executor.__init__

    def init_writing_elsewhere(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.executor_output_path = path

    executor.Executor.__init__ = init_writing_elsewhere


def run_step(request, report):
    code = 1
    try:
        set_name(request.get('name', 'weir-step'))
        log = os.open(request['log'], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        if request.get('binds'):
            private_mounts(request['binds'])
        os.chdir(request['cwd'])
        # The step's environment, changed only where it differs from the server's: each change
        # is a call into the C library's environment.
        env = {**request['env'], '_KFP_RUNTIME': 'true'}
        for key in [key for key in os.environ if key not in env]:
            del os.environ[key]
        for key, value in env.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
        # The rehearsal cached the server's temporary folder; the step's own TMPDIR decides.
        tempfile.tempdir = None
        # What the SDK's launch script does: the component source in a module file, in a
        # folder of the step's own (weir reuses it emptied) rather than a new `mktemp -d` one.
        folder = request.get('module_dir')
        if folder:
            os.makedirs(folder, exist_ok=True)
        else:
            folder = tempfile.mkdtemp()
        module = os.path.join(folder, 'ephemeral_component.py')
        # As the launch script's `printf` writes it: the source's bytes, no text layer.
        fd = os.open(module, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            write_all(fd, request['source'].encode())
        finally:
            os.close(fd)
        sys.argv = ['kfp.dsl.executor_main', '--component_module_path', module, *request['args']]
        if request.get('output_file'):
            write_output_to(request['output_file'])
        # The module is new at every step, so its bytecode would never be read again: not
        # writing it saves a file made (and later removed) per step.
        sys.dont_write_bytecode = True
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
        # Weir learns of the end now rather than after the process is torn down and reaped.
        try:
            # As the process's status will say it (`os._exit` keeps the low 8 bits).
            os.write(report, (json.dumps({'id': request['id'], 'exit': code & 0xFF}) + '\n').encode())
        except Exception:
            pass
        os._exit(code)


def read_all(fd):
    """What a pipe carries until its writer closes it; the pipe is closed after."""
    chunks = []
    while True:
        data = os.read(fd, 1 << 20)
        if not data:
            break
        chunks.append(data)
    os.close(fd)
    return b''.join(chunks)


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def main():
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    rehearse()
    gc.collect()
    gc.freeze()
    global STEP_PAGES
    try:
        STEP_PAGES = learn_step_pages()
    except OSError:
        pass  # the spares rehearse
    # Each step holds a copy of this (not inherited by the programs it starts), to say when it
    # ends: so weir's end of the pipe closes only once the server and every step are gone.
    report = os.dup(OUT)

    def fork_spare():
        inbox, sender = os.pipe()
        pid = os.fork()
        if pid == 0:
            # Only the server may hold a spare's way in: its step is whatever it reads before
            # the server closes it.
            try:
                for fd in [sender, *(other for _, other in spares)]:
                    os.close(fd)
                spare(inbox, report, wake_r, wake_w)
            finally:
                os._exit(1)  # never back into the server's loop
        os.close(inbox)
        return pid, sender

    running = {}
    buffer = b''
    # How a spare gets ready: the number of pages it copies, or 0 when it rehearses a step.
    send({'ready': True, 'pid': os.getpid(), 'step_pages': sum(length for _, length in STEP_PAGES or ()) // PAGE})
    spares = collections.deque()

    def refill():
        while len(spares) < SPARES:
            try:
                spares.append(fork_spare())
            except OSError:
                return  # tried again at the next step

    refill()
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
                request_id = json.loads(line)['id']
                if not spares:
                    try:
                        spares.append(fork_spare())
                    except OSError as e:
                        send({'id': request_id, 'error': f'cannot fork the step: {e}'})
                        continue
                # The oldest spare: the likeliest to have finished its rehearsal.
                pid, sender = spares.popleft()
                # Started before it is handed its step: the step may end before this process
                # is scheduled again.
                running[pid] = request_id
                send({'id': request_id, 'pid': pid})
                try:
                    write_all(sender, line)
                except OSError:
                    pass  # the spare died: reaped below and reported as killed
                os.close(sender)
                refill()
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            idle = [spare for spare in spares if spare[0] == pid]
            if idle:
                os.close(idle[0][1])  # an idle spare died; another is forked at the next step
                spares.remove(idle[0])
                continue
            step = running.pop(pid, None)
            if step is None:
                continue
            if os.WIFSIGNALED(status):
                send({'id': step, 'signal': os.WTERMSIG(status)})
            else:
                send({'id': step, 'exit': os.WEXITSTATUS(status)})


if __name__ == '__main__':
    main()
