#!/usr/bin/env python3
"""Reference oracle: validate kickstart files with pykickstart (ksvalidator -i semantics).

Usage: pykickstart_oracle.py VERSION[,VERSION...] FILE...
       pykickstart_oracle.py --texts < CASES.jsonl
Prints one JSON object per (file, version) on stdout:
  {"file": F, "version": V, "ok": bool, "line": int|null, "kind": str, "message": str, "seconds": float}
where line/kind/message describe the first error. Each file is parsed with the working directory set
to its own directory (relative %include resolution), following kickstart-syntax.md section 11.2.

With --texts, each stdin line is {"version": V, "text": T}; T is written to ks.cfg in a private
temporary directory and validated there the same way, and one {"ok", "line", "kind", "message"}
object per input is printed in input order. Building a handler costs far more than validating a
short input, so one pristine handler is built per version and each input is validated in a forked
child that starts from a copy of it: the same fresh state as a new handler, at a fraction of the
cost.
"""
import json
import os
import sys
import time
import warnings

from pykickstart.errors import KickstartError, KickstartParseWarning
from pykickstart.parser import KickstartParser, preprocessKickstart
from pykickstart.version import DEVEL, makeVersion, stringToVersion


def handler_for(name):
    return makeVersion(DEVEL if name.upper() == "DEVEL" else stringToVersion(name))


def closure_line(fn):
    try:
        names = fn.__code__.co_freevars
        return fn.__closure__[names.index("lineno")].cell_contents
    except (AttributeError, ValueError, TypeError):
        return None


def validate(path, version, handler=None):
    errors = []  # (exception, line)

    class Collecting(KickstartParser):
        def _tryFunc(self, fn):
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - mirror ksvalidator
                self.errorsCount += 1
                line = getattr(e, "lineno", None)
                if line is None:
                    line = closure_line(fn)
                errors.append((e, line))

    with warnings.catch_warnings():
        warnings.filterwarnings("error", category=KickstartParseWarning)
        if handler is None:
            handler = handler_for(version)
        parser = Collecting(handler, followIncludes=True, errorsAreFatal=False)
        tmp = None
        try:
            tmp = preprocessKickstart(path)
            if tmp is None:
                raise RuntimeError("Empty file")
            parser.readKickstart(tmp)
        except Exception as e:  # noqa: BLE001
            errors.append((e, getattr(e, "lineno", None)))
        finally:
            if tmp and os.path.exists(tmp):
                os.unlink(tmp)
    return errors


def texts():
    import tempfile
    out = sys.stdout
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        pristine = {}
        for raw in sys.stdin:
            case = json.loads(raw)
            version = case["version"]
            if version not in pristine:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pristine[version] = handler_for(version)
            with open("ks.cfg", "w", encoding="utf-8", newline="") as f:
                f.write(case["text"])
            out.flush()
            rfd, wfd = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(rfd)
                errs = validate("ks.cfg", version, pristine[version])
                rec = {"ok": not errs, "line": None, "kind": "", "message": ""}
                if errs:
                    e, line = errs[0]
                    rec["line"] = line
                    rec["kind"] = type(e).__name__
                    rec["message"] = getattr(e, "message", None) or str(e)
                with os.fdopen(wfd, "w") as w:
                    w.write(json.dumps(rec) + "\n")
                os._exit(0)
            os.close(wfd)
            with os.fdopen(rfd) as r:
                answer = r.read()
            os.waitpid(pid, 0)
            if not answer.endswith("\n"):
                raise SystemExit(f"oracle child failed on {case!r}")
            out.write(answer)
    out.flush()


def main():
    if sys.argv[1:] == ["--texts"]:
        texts()
        return
    versions = sys.argv[1].split(",")
    files = sys.argv[2:]
    if files == ["-"]:
        files = [l.rstrip("\n") for l in sys.stdin if l.strip()]
    here = os.getcwd()
    out = sys.stdout
    for f in files:
        path = os.path.abspath(f)
        for v in versions:
            os.chdir(os.path.dirname(path))
            sys.setrecursionlimit(1000)
            t0 = time.perf_counter()
            errs = validate(os.path.basename(path), v)
            dt = time.perf_counter() - t0
            os.chdir(here)
            rec = {"file": f, "version": v, "ok": not errs, "line": None, "kind": "", "message": "",
                   "seconds": dt}
            if errs:
                e, line = errs[0]
                rec["line"] = line
                rec["kind"] = type(e).__name__
                rec["message"] = getattr(e, "message", None) or str(e)
            out.write(json.dumps(rec) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
