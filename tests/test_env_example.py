"""`.env.example` lists every variable the code reads from the environment (the README says so).

The names are found in the source, not in a hand-kept list: every `env.<type>("NAME")` of the
settings and every `os.environ.get("NAME")` / `os.getenv("NAME")` outside the tests. A variable
added to the code without its line in `.env.example` fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READ = re.compile(
    r"""(?:\benv\.(?:str|int|bool|float|list|dict|json|url|db|db_url|cache|path|tuple)\(|"""
    r"""\benv\(|os\.environ\.get\(|os\.getenv\(|os\.environ\[|os\.environ\.setdefault\()"""
    r"""\s*["']([A-Z][A-Z0-9_]+)["']"""
)
# Read from the environment but not Autoglue settings: the process's own plumbing, and the
# `_FILE` twin every variable has (documented once at the top of .env.example).
NOT_SETTINGS = {"DJANGO_SETTINGS_MODULE", "XDG_RUNTIME_DIR", "DJANGO_SECRET_KEY_FILE"}


def _variables_read_by_the_code() -> dict[str, str]:
    found: dict[str, str] = {}
    sources = [*ROOT.glob("autoglue/*.py"), *ROOT.glob("apps/**/*.py")]
    for path in sources:
        relative = path.relative_to(ROOT).as_posix()
        if "/tests/" in relative or relative.endswith("test_settings.py"):
            continue
        for name in READ.findall(path.read_text(encoding="utf-8")):
            found.setdefault(name, relative)
    return found


def test_the_scan_finds_the_settings_it_must():
    found = _variables_read_by_the_code()
    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "AUTOGLUE_PORT"} <= found.keys()


def test_every_variable_the_code_reads_is_listed_in_env_example():
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    missing = {
        name: where
        for name, where in _variables_read_by_the_code().items()
        if name not in listed and name not in NOT_SETTINGS
    }
    assert not missing, f".env.example lacks: {missing}"
