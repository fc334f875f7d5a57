"""The docs promise things the code must keep: the README's two commands, every config key."""

import re

from pydantic import BaseModel

from conftest import REPO
from snakesweep.config import SweepConfig


def _models_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        keys.append(f"{prefix}{name}")
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys += _models_keys(ann, f"{prefix}{name}.")
    return keys


def test_readme_starts_with_the_two_commands_and_ci_runs_the_second():
    readme = (REPO / "README.md").read_text()
    block = re.match(r"# snakesweep\n\n```bash\n(.*?)```", readme, re.S)
    assert block, "the README must open with the commands block"
    commands = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(commands) == 2
    assert commands[0].endswith("snakemake --cores 2")
    assert commands[1].endswith("python -m pytest")
    assert commands[1] in (REPO / ".ci" / "run").read_text()


def test_config_readme_documents_every_key():
    doc = (REPO / "config" / "README.md").read_text()
    missing = [k for k in _models_keys(SweepConfig) if f"`{k.split('.')[-1]}`" not in doc]
    assert missing == []
