"""Install this checkout's Slurm profile where Snakemake looks for profiles by name.

``snakemake --profile slurm`` looks for a directory ``slurm`` in the working directory, then in
the user's Snakemake config directory (``$XDG_CONFIG_HOME/snakemake``, by default
``~/.config/snakemake``), then the site's (``/etc/xdg/snakemake``): never in ``profiles/``. This
module links ``<config dir>/snakemake/slurm`` to this checkout's ``profiles/slurm``, so the short
form works from the repository root and edits of ``profiles/slurm/config.yaml`` (partition,
account) keep applying; ``profiles/default`` is applied on top as before (Snakemake's workflow
profile, found from the Snakefile).

    python -m snakesweep.profile install [--name slurm] [--force]   # make the link
    python -m snakesweep.profile where [--name slurm]               # where it is, what it points to

An existing profile of that name that is not a link to this checkout is left alone (exit 1, with
the fix: --force replaces it, or --name picks another name). Standard library only.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROFILES = REPO / "profiles"


def snakemake_config_dir() -> Path:
    """Snakemake's user config directory (platformdirs' user_config_dir('snakemake') on Linux)."""
    if sys.platform == "darwin" or os.name == "nt":  # platformdirs' answer there; Snakemake depends on it
        from platformdirs import user_config_dir

        return Path(user_config_dir("snakemake", "snakemake"))
    base = os.environ.get("XDG_CONFIG_HOME", "").strip() or os.path.expanduser("~/.config")
    return Path(base) / "snakemake"


def install(name: str = "slurm", source: str = "slurm", force: bool = False) -> tuple[Path, str | None]:
    """Link <config dir>/<name> -> profiles/<source>; (the link, a problem or None)."""
    target = PROFILES / source
    if not (target / "config.yaml").is_file():
        return target, f"{target} has no config.yaml (fix: run this from a complete checkout)"
    link = snakemake_config_dir() / name
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return link, None  # already installed
    if link.exists() or link.is_symlink():
        if not force:
            what = f"a link to {os.readlink(link)}" if link.is_symlink() else "a profile"
            return link, (f"{link} is already {what} (fix: --force to replace it with a link to {target}, "
                          "or --name to install under another name)")
        if link.is_dir() and not link.is_symlink():
            return link, f"{link} is a directory; move it away first (fix: mv {link} {link}.old)"
        link.unlink()
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target, target_is_directory=True)
    return link, None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m snakesweep.profile", description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["install", "where"])
    ap.add_argument("--name", default="slurm", help="the name to type after --profile (default: slurm)")
    ap.add_argument("--force", action="store_true", help="replace an existing profile link or file of that name")
    a = ap.parse_args(argv)
    if a.action == "where":
        link = snakemake_config_dir() / a.name
        points = os.readlink(link) if link.is_symlink() else ("a directory" if link.exists() else "not installed")
        print(f"{link}: {points}")
        return 0
    link, problem = install(a.name, "slurm", a.force)
    if problem:
        print(f"snakesweep: {problem}", file=sys.stderr)
        return 1
    print(f"snakesweep: {link} -> {os.readlink(link)}; `snakemake --profile {a.name}` now uses it "
          "(edit the partition and account in profiles/slurm/config.yaml)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
