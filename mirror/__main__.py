"""The `mirror` program: `python -m mirror` and the `mirror` console script both start here."""


def run() -> None:
    from mirror.core.unused_imports import hide_pandas

    hide_pandas()  # before anything imports DuckDB or pyarrow (see mirror.core.unused_imports)
    from mirror.cli import main

    main()


if __name__ == "__main__":
    run()
