# amichain: reports each file ansible-playbook reads, and each folder it lists, under the
# folder it started in (the repository root when Packer runs it), once per path, as a line
# on standard error:  amichain-ansible-read: {"path": "ansible/site.yml", "kind": "file"}
# Loaded by Python at start-up when this folder is on PYTHONPATH. Only ansible-playbook and
# the workers it forks report; the modules it runs (AnsiballZ) and other programs do not.
import os
import sys


def _amichain_trace():
    argv = getattr(sys, "orig_argv", None) or []
    if not any(os.path.basename(a) == "ansible-playbook" for a in argv[:3]):
        return
    import json
    import stat

    root = os.getcwd()
    prefix = root.rstrip(os.sep) + os.sep
    seen = set()
    busy = [False]
    marker = "amichain-ansible-read: "

    def report(raw, kind):
        if isinstance(raw, int):
            return
        try:
            p = os.fsdecode(raw)
        except Exception:
            return
        p = os.path.normpath(os.path.join(root, p))
        if not p.startswith(prefix):
            return
        rel = p[len(prefix):]
        if (kind, rel) in seen or "__pycache__" in rel.split(os.sep):
            return
        try:
            st = os.stat(p)
        except OSError:
            return  # a failed open or a missing folder reads nothing
        if kind == "file" and not stat.S_ISREG(st.st_mode):
            return
        seen.add((kind, rel))
        line = marker + json.dumps({"path": rel.replace(os.sep, "/"), "kind": kind}, sort_keys=True) + "\n"
        try:
            os.write(2, line.encode())
        except OSError:
            pass

    def hook(event, args):
        if busy[0]:
            return
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            if mode is not None:
                if any(c in str(mode) for c in "wax+"):
                    return
            elif flags is not None and flags & os.O_ACCMODE != os.O_RDONLY:
                return
            kind = "file"
        elif event in ("os.listdir", "os.scandir"):
            path, kind = (args[0] if args else "."), "dir"
            if path is None:
                path = "."
        else:
            return
        busy[0] = True
        try:
            report(path, kind)
        finally:
            busy[0] = False

    sys.addaudithook(hook)


_amichain_trace()
del _amichain_trace
