"""Run several `airflow` CLI commands in one process, in order, stopping at the first that fails.

    python dags/airflow_commands.py '[["db", "migrate"], ["dags", "test", "churn_score", "-c", "{...}"]]'

Each command goes through Airflow's own CLI parser and handler, as `airflow ...` would run it;
one process pays Airflow's start-up (about 10 s on 2 cores) once instead of once per command.
`make demo` runs its Airflow commands this way. Not a DAG file: .airflowignore keeps the DAG
processor from parsing it.
"""

import json
import sys


def main(commands: list[list[str]]) -> int:
    from airflow.cli import cli_parser

    parser = cli_parser.get_parser()
    for argv in commands:
        print(f"==> airflow {' '.join(argv)}", flush=True)
        args = parser.parse_args(argv)
        try:
            args.func(args)
        except SystemExit as exit:
            if exit.code not in (None, 0):
                print(f"==> `airflow {' '.join(argv)}` failed: {exit.code}", flush=True)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
