"""Settings: one table of (name, default, help); flags beat RXRADAR_* variables beat defaults."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from rxradar import settings
from rxradar.settings import Settings

NAMES = [f.name for f in fields(Settings)]
README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(autouse=True)
def no_rxradar_environment(monkeypatch):
    for name in NAMES:
        monkeypatch.delenv(f"RXRADAR_{name.upper()}", raising=False)


@pytest.mark.parametrize("name", NAMES)
def test_every_setting_has_help_text(name):
    [field] = [f for f in fields(Settings) if f.name == name]
    help_text = field.metadata.get("help", "")
    assert len(help_text.split()) >= 3, f"{name}: help text {help_text!r} says too little"


def test_describe_lists_every_setting_with_its_default_in_declaration_order():
    assert [(n, d) for n, d, _ in settings.describe()] == [(f.name, f.default) for f in fields(Settings)]


def test_defaults_without_environment_or_flags():
    s = settings.load()
    assert (s.workspace, s.mme_table, s.max_days_supply) == (Path("rxradar-workspace"), "cdc2017_datafile", 365)


def test_environment_is_picked_up_and_typed(monkeypatch, tmp_path):
    monkeypatch.setenv("RXRADAR_MME_TABLE", "cdc2022")
    monkeypatch.setenv("RXRADAR_MAX_DAYS_SUPPLY", "90")
    monkeypatch.setenv("RXRADAR_WORKSPACE", str(tmp_path))
    s = settings.load()
    assert (s.mme_table, s.max_days_supply, s.workspace) == ("cdc2022", 90, tmp_path)
    assert isinstance(s.max_days_supply, int) and isinstance(s.workspace, Path)


def test_an_explicit_override_beats_the_environment(monkeypatch):
    monkeypatch.setenv("RXRADAR_MME_TABLE", "cdc2022")
    monkeypatch.setenv("RXRADAR_THREADS", "3")
    s = settings.load(mme_table="cdc2017_datafile")
    assert (s.mme_table, s.threads) == ("cdc2017_datafile", 3)


def test_an_override_of_none_means_not_given(monkeypatch):
    # The CLI passes None for every flag the user left out.
    monkeypatch.setenv("RXRADAR_MME_TABLE", "cdc2022")
    assert settings.load(mme_table=None, workspace=None).mme_table == "cdc2022"


def test_an_unknown_setting_raises_value_error_naming_it():
    with pytest.raises(ValueError, match="mme_tabel"):
        settings.load(mme_tabel="cdc2022")


def test_a_malformed_environment_value_names_its_variable(monkeypatch):
    monkeypatch.setenv("RXRADAR_THREADS", "all")
    with pytest.raises(ValueError, match="RXRADAR_THREADS"):
        settings.load()


def test_readme_documents_every_setting():
    if not README.exists():
        pytest.skip("no README.md yet")
    text = README.read_text(encoding="utf-8")
    if not re.search(r"RXRADAR_|^#+ .*settings", text, re.IGNORECASE | re.MULTILINE):
        pytest.skip("README.md has no settings section yet")
    missing = [n for n in NAMES if n not in text and f"RXRADAR_{n.upper()}" not in text]
    assert missing == []


@pytest.mark.parametrize("text, size", [("6GB", 6 * 10**9), ("512MB", 512 * 10**6), ("2GiB", 2 * 2**30),
                                        ("1.5 GB", 1_500_000_000), ("100", 100)])
def test_memory_limit_sizes_read_as_the_engine_reads_them(text, size):
    assert settings.byte_size(text) == size


def test_a_memory_limit_that_is_not_a_size_is_refused_when_settings_load():
    with pytest.raises(ValueError, match="memory_limit 'lots'"):
        settings.load(memory_limit="lots")
