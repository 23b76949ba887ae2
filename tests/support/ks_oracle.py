#!/usr/bin/env python3
"""pykickstart as a test oracle for rendered kickstarts (kickstart-syntax.md §11.2).

usage: ks_oracle.py VERSION FILE
Prints JSON: {"errors": [...], "commands": [[line, [tokens...]], ...], "scripts": [{"type", "line", "body"}]}.
"errors" uses ksvalidator -i semantics (warnings are errors); "commands" are the command lines as
pykickstart tokenised them (shlex), so a test can count commands and check values survived intact.
"""
import json
import os
import sys
import warnings

from pykickstart.errors import KickstartParseWarning
from pykickstart.parser import KickstartParser, preprocessKickstart
from pykickstart.version import DEVEL, makeVersion, stringToVersion


def main():
    version, path = sys.argv[1], sys.argv[2]
    handler = makeVersion(DEVEL if version.upper() == "DEVEL" else stringToVersion(version))
    errors = []
    commands = []

    class Oracle(KickstartParser):
        def _tryFunc(self, fn):
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - collect like ksvalidator
                self.errorsCount += 1
                errors.append(str(e))

        def handleCommand(self, lineno, args):
            commands.append([lineno, list(args)])
            return KickstartParser.handleCommand(self, lineno, args)

    os.chdir(os.path.dirname(os.path.abspath(path)))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", category=KickstartParseWarning)
        parser = Oracle(handler, followIncludes=True, errorsAreFatal=False)
        tmp = None
        try:
            tmp = preprocessKickstart(os.path.basename(path))
            if tmp is None:
                raise RuntimeError("Empty file")
            parser.readKickstart(tmp)
        except Exception as e:  # noqa: BLE001
            errors.append("%s: %s" % (type(e).__name__, e))
        finally:
            if tmp and os.path.exists(tmp):
                os.unlink(tmp)
    scripts = [{"type": s.type, "line": s.lineno, "body": s.script} for s in handler.scripts]
    json.dump({"errors": errors, "commands": commands, "scripts": scripts}, sys.stdout)


main()
