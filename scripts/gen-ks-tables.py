#!/usr/bin/env python3
"""Generate kickstart/data/tables.json from the installed pykickstart (3.78).

Run: .venv/bin/python scripts/gen-ks-tables.py > kickstart/data/tables.json

For every syntax version pykickstart knows from F21 and RHEL7 on (discovered from
pykickstart.version.versionMap, so a newer pykickstart's versions are picked up as they come) it
records each command name: its class, which names share one command object (aliases), whether the
class is deprecated or removed, the conflicting commands, the write priority, whether its parse() uses parse_known_args, and the argparse
option table of its parser (option strings in the parser's own order, action kind, nargs, const, type,
choices, required, default, deprecation). Section header parsers (%packages, scripts, %certificate) are
dumped the same way. The Rust crate compiles the JSON in; it needs no Python at build or run time.
"""
import argparse
import inspect
import json
import re
import sys
import warnings

import pykickstart
from pykickstart.base import DeprecatedCommand, RemovedCommand
from pykickstart.parser import (CertificateSection, OnErrorScriptSection, PackageSection,
                                PostScriptSection, PreInstallScriptSection, PreScriptSection,
                                TracebackScriptSection)
from pykickstart.version import DEVEL, makeVersion, stringToVersion, versionMap



def discover_versions():
    """Fedora versions from F21 and RHEL versions from RHEL7 on, oldest first, and the name DEVEL
    stands for (the numbered Fedora with DEVEL's constant)."""
    def numbered(prefix, first):
        pat = re.compile(prefix + r"(\d+)$")
        found = sorted((int(m.group(1)), name) for name in versionMap
                       if (m := pat.match(name)) and int(m.group(1)) >= first)
        return [name for _, name in found]
    fedora = numbered("F", 21)
    rhel = numbered("RHEL", 7)
    devel = [n for n in fedora if versionMap[n] == DEVEL]
    if len(devel) != 1:
        raise SystemExit(f"no single Fedora version has DEVEL's constant {DEVEL}: {devel}")
    return fedora, rhel, devel[0]


def jsonable(v):
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if v is argparse.SUPPRESS:
        return "==SUPPRESS=="
    return repr(v)


def type_name(t):
    if t is None:
        return None
    return getattr(t, "__name__", repr(t))


def action_kind(a):
    name = type(a).__name__
    return {
        "_StoreAction": "store",
        "_StoreTrueAction": "store_true",
        "_StoreFalseAction": "store_false",
        "_StoreConstAction": "store_const",
        "_AppendAction": "append",
        "_AppendConstAction": "append_const",
        "_CountAction": "count",
        "ExtendAction": "extend",
        "ExtendConstAction": "extend_const",
        "_ExtendAction": "extend",
    }.get(name, name)


def type_map(t):
    """Accepted values of the table-driven type callbacks (autopart --type, raid/btrfs levels,
    snapshot --when): {input (lower/upper-cased as the callback does): stored value}."""
    owner = getattr(t, "__self__", None)
    if owner is None and getattr(t, "__closure__", None):
        for cell in t.__closure__:
            if hasattr(cell.cell_contents, "levelMap"):
                owner = cell.cell_contents
    for attr in ("typeMap", "levelMap", "whenMap"):
        m = getattr(owner, attr, None)
        if isinstance(m, dict):
            return {str(k): jsonable(v) for k, v in m.items()}
    return None


PARSERS = []
PARSER_INDEX = {}


def dump_parser(op):
    actions = []
    ids = {}
    for a in op._actions:
        ids[id(a)] = len(actions)
        nargs = a.nargs
        actions.append({
            "opts": list(a.option_strings),
            "dest": a.dest,
            "kind": action_kind(a),
            "nargs": nargs,
            "const": jsonable(a.const),
            "type": type_name(a.type),
            "choices": None if a.choices is None else [jsonable(c) for c in a.choices],
            "required": bool(a.required),
            "default": jsonable(a.default),
            "deprecated": bool(getattr(a, "deprecated", False)),
            "metavar": jsonable(a.metavar),
            "type_map": type_map(a.type),
        })
    strings = [[s, ids[id(a)]] for s, a in op._option_string_actions.items()]
    rec = {"prog": op.prog, "actions": actions, "strings": strings,
           "groups": [[ids[id(a)] for a in g._group_actions] for g in op._mutually_exclusive_groups]}
    key = json.dumps(rec, sort_keys=True)
    if key not in PARSER_INDEX:
        PARSER_INDEX[key] = len(PARSERS)
        PARSERS.append(rec)
    return PARSER_INDEX[key]


def uses_known_args(cls):
    """The command name used in "Unexpected arguments to X command" when parse() uses
    parse_known_args (found by walking the MRO to the first parse() that parses), else None."""
    for klass in cls.__mro__:
        fn = klass.__dict__.get("parse")
        if fn is None:
            continue
        try:
            src = inspect.getsource(fn)
        except (OSError, TypeError):
            return None
        if "parse_known_args" in src:
            m = re.search(r'"command":\s*"([^"]+)"', src)
            if m:
                return m.group(1)
            m = re.search(r"Unexpected arguments to (\w+) command", src)
            return m.group(1) if m else "{cmd}"
        if "parse_args(" in src:
            return None
    return None


def skips_argparse(cls):
    """True when the class's parse() never runs its argparse parser (e.g. FC3_Authconfig keeps the
    raw line)."""
    for klass in cls.__mro__:
        fn = klass.__dict__.get("parse")
        if fn is None:
            continue
        try:
            src = inspect.getsource(fn)
        except (OSError, TypeError):
            return False
        if "parse_args(" in src or "parse_known_args(" in src:
            return False
        if ".parse(" in src:
            continue
        return True
    return False


def dump_version(name):
    ver = DEVEL if name == "DEVEL" else stringToVersion(name)
    handler = makeVersion(ver)
    objs = {}
    commands = {}
    for cname in sorted(handler.commands):
        cmd = handler.commands[cname]
        if cmd is None:
            continue
        group = objs.setdefault(id(cmd), len(objs))
        status = "ok"
        if isinstance(cmd, RemovedCommand):
            status = "removed"
        elif isinstance(cmd, DeprecatedCommand):
            status = "deprecated"
        parser = None
        if status == "ok" or hasattr(cmd, "op"):
            op = getattr(cmd, "op", None)
            if op is None and hasattr(cmd, "_getParser"):
                op = cmd._getParser()
            if op is not None and status == "ok":
                parser = dump_parser(op)
        commands[cname] = {
            "class": type(cmd).__name__,
            "mro": [k.__name__ for k in type(cmd).__mro__
                    if k.__module__.startswith("pykickstart.commands.")],
            "obj": group,
            "status": status,
            "parser": parser,
            "conflicts": list(getattr(cmd, "conflictingCommands", []) or []),
            "prio": cmd.writePriority,
            "known_args": uses_known_args(type(cmd)),
            "raw": status == "ok" and skips_argparse(type(cmd)),
            "list": cmd.dataList() is not None,
        }
    sections = {}
    for sec_cls, tag in [(PreScriptSection, "%pre"), (PreInstallScriptSection, "%pre-install"),
                         (PostScriptSection, "%post"), (OnErrorScriptSection, "%onerror"),
                         (TracebackScriptSection, "%traceback"), (PackageSection, "%packages"),
                         (CertificateSection, "%certificate")]:
        kwargs = {}
        if sec_cls is CertificateSection:
            from pykickstart.parser import Certificate
            kwargs["dataObj"] = Certificate
        elif sec_cls is not PackageSection:
            from pykickstart.parser import Script
            kwargs["dataObj"] = Script
        sec = sec_cls(handler, **kwargs)
        sections[tag] = dump_parser(sec._getParser())
    return {"name": name, "id": ver, "commands": commands, "sections": sections}


def pykickstart_version():
    try:
        from importlib.metadata import version
        return version("pykickstart")
    except Exception:  # noqa: BLE001 - metadata missing in a source checkout
        return getattr(pykickstart, "__version__", "unknown")


def main():
    warnings.simplefilter("ignore")
    fedora, rhel, devel = discover_versions()
    versions = [dump_version(v) for v in fedora + rhel]
    out = {"pykickstart": pykickstart_version(), "devel": devel, "parsers": PARSERS,
           "versions": versions}
    json.dump(out, sys.stdout, separators=(",", ":"), sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
