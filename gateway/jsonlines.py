"""Run a program whose log is plain text, and write each of its lines as a JSON object
with the fields of the services' (servicekit/jsonlog.py), so that every line of a local
run's logs is JSON. For nginx-prometheus-exporter 0.11, which has no JSON log format:

    python -m gateway.jsonlines nginx-exporter -- prometheus-nginx-exporter ...

The program's status is this command's. supervisord stops the two together (its
process settings signal the whole process group).
"""

import os
import subprocess
import sys

from .access_metrics import log_line


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 3 or argv[1] != "--":
        sys.exit("usage: python -m gateway.jsonlines SERVICE -- COMMAND [ARGUMENT...]")
    service, command = argv[0], argv[2:]
    program = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, errors="replace", env=os.environ)
    for line in program.stdout:
        print(log_line(service, "info", program.pid, service, line.rstrip("\n")), flush=True)
    return program.wait()


if __name__ == "__main__":
    sys.exit(main())
