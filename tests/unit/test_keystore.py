"""The key stores (DOMAIN §4): zone keys by channel and id, PIN verification keys by id
with a current one, from files, the environment, or both; key material never shown."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from banking.keystore import (
    EnvKeyStore,
    FileKeyStore,
    KeyStore,
    KeyStoreError,
    LayeredKeyStore,
    MemoryKeyStore,
    key_store,
    write_sandbox_keys,
)
from banking.pin import Pin, PinContext, PinRefused, Why, open_pin_block, seal_pin_block

ZONE_C01_1 = bytes(range(32))
ZONE_C01_2 = bytes(range(32, 64))
ZONE_C02_1 = bytes(range(64, 96))
PVK1 = b"\x11" * 32
PVK2 = b"\x22" * 32
BAD = "not-a-key-but-a-secret-looking-value-0123456789abcdef0123456789ab"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="ascii")


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    write(tmp_path / "zone" / "C01" / "1.key", ZONE_C01_1.hex() + "\n")
    write(tmp_path / "zone" / "C01" / "2.key", ZONE_C01_2.hex().upper())
    write(tmp_path / "zone" / "C02" / "1.key", ZONE_C02_1.hex())
    write(tmp_path / "pvk" / "PVK1.key", PVK1.hex())
    write(tmp_path / "pvk" / "PVK2.key", PVK2.hex())
    write(tmp_path / "pvk" / "current", "PVK2\n")
    return tmp_path


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("SSCARD_KEY_DIR", "SSCARD_PVK_CURRENT", "SSCARD_ZONE_KEY_C01_1"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SSCARD_ZONE_KEY_C01_1", ZONE_C01_1.hex())
    monkeypatch.setenv("SSCARD_ZONE_KEY_C01_2", ZONE_C01_2.hex())
    monkeypatch.setenv("SSCARD_ZONE_KEY_C02_1", ZONE_C02_1.hex())
    monkeypatch.setenv("SSCARD_PVK_PVK1", PVK1.hex())
    monkeypatch.setenv("SSCARD_PVK_PVK2", PVK2.hex())
    monkeypatch.setenv("SSCARD_PVK_CURRENT", "PVK2")
    return monkeypatch


def test_a_file_store_finds_zone_keys_by_channel_and_id(key_dir: Path) -> None:
    keys = FileKeyStore(key_dir)

    assert keys.zone_key("C01", 1) == ZONE_C01_1
    assert keys.zone_key("C01", 2) == ZONE_C01_2
    assert keys.zone_key("C02", 1) == ZONE_C02_1


def test_an_env_store_finds_zone_keys_by_channel_and_id(env: pytest.MonkeyPatch) -> None:
    keys = EnvKeyStore()

    assert keys.zone_key("C01", 1) == ZONE_C01_1
    assert keys.zone_key("C01", 2) == ZONE_C01_2
    assert keys.zone_key("C02", 1) == ZONE_C02_1


@pytest.mark.parametrize(
    "channel, key_id",
    [("C01", 3), ("C03", 1), ("C01", 0), ("C01", 256), ("C01", -1), ("../C01", 1), ("c01", 1)],
)
def test_an_unknown_zone_key_is_none(
    key_dir: Path, env: pytest.MonkeyPatch, channel: str, key_id: int
) -> None:
    assert FileKeyStore(key_dir).zone_key(channel, key_id) is None
    assert EnvKeyStore().zone_key(channel, key_id) is None


def test_a_file_store_gives_the_current_pvk_and_older_ones_by_id(key_dir: Path) -> None:
    keys = FileKeyStore(key_dir)

    assert keys.verification_key() == ("PVK2", PVK2)
    assert keys.verification_key_by_id("PVK1") == PVK1
    assert keys.verification_key_by_id("PVK3") is None
    assert keys.verification_key_by_id("../pvk/PVK1") is None


def test_an_env_store_gives_the_current_pvk_and_older_ones_by_id(env: pytest.MonkeyPatch) -> None:
    keys = EnvKeyStore()

    assert keys.verification_key() == ("PVK2", PVK2)
    assert keys.verification_key_by_id("PVK1") == PVK1
    assert keys.verification_key_by_id("PVK3") is None
    assert keys.verification_key_by_id("CURRENT") is None


def test_rotating_the_pvk_in_a_directory_is_seen_without_a_restart(key_dir: Path) -> None:
    keys = FileKeyStore(key_dir)
    assert keys.verification_key()[0] == "PVK2"
    assert keys.verification_key_by_id("PVK3") is None

    write(key_dir / "pvk" / "PVK3.key", (b"\x33" * 32).hex())
    write(key_dir / "pvk" / "current", "PVK3")

    assert keys.verification_key() == ("PVK3", b"\x33" * 32)
    assert keys.verification_key_by_id("PVK1") == PVK1


def test_a_new_zone_key_id_appears_beside_the_old(key_dir: Path) -> None:
    keys = FileKeyStore(key_dir)
    assert keys.zone_key("C01", 9) is None

    write(key_dir / "zone" / "C01" / "9.key", (b"\x99" * 32).hex())

    assert keys.zone_key("C01", 9) == b"\x99" * 32
    assert keys.zone_key("C01", 1) == ZONE_C01_1


def test_an_unchanged_key_file_is_read_once(key_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = FileKeyStore(key_dir)
    reads: list[Path] = []
    read = FileKeyStore._read
    monkeypatch.setattr(
        FileKeyStore, "_read", lambda self, path: reads.append(path) or read(self, path)
    )

    assert [keys.zone_key("C01", 1) for _ in range(3)] == [ZONE_C01_1] * 3
    assert reads == [key_dir / "zone" / "C01" / "1.key"]


def seal(key: bytes, key_id: int = 1) -> tuple[str, PinContext]:
    ctx = PinContext("Q1", "A1", "6217881000000000018", "C00000001", "20261206100000", "C01")
    return seal_pin_block("802614", ctx, key_id, key), ctx


def test_a_zone_key_removed_from_the_key_dir_refuses_the_next_block_as_an_unknown_key(
    key_dir: Path,
) -> None:
    keys = FileKeyStore(key_dir)
    block, ctx = seal(ZONE_C01_1)
    assert open_pin_block(block, ctx, keys).pin == Pin("802614")

    (key_dir / "zone" / "C01" / "1.key").unlink()

    with pytest.raises(PinRefused) as refused:
        open_pin_block(block, ctx, keys)
    assert (refused.value.code, refused.value.why) == ("E130", Why.UNKNOWN_KEY)


def test_a_zone_key_removed_from_the_environment_refuses_the_next_block_as_an_unknown_key() -> None:
    environ = {"SSCARD_ZONE_KEY_C01_1": ZONE_C01_1.hex()}
    keys = key_store(environ)
    block, ctx = seal(ZONE_C01_1)
    assert open_pin_block(block, ctx, keys).pin == Pin("802614")

    del environ["SSCARD_ZONE_KEY_C01_1"]

    with pytest.raises(PinRefused) as refused:
        open_pin_block(block, ctx, keys)
    assert (refused.value.code, refused.value.why) == ("E130", Why.UNKNOWN_KEY)


def test_a_zone_key_replaced_in_the_key_dir_opens_only_blocks_under_the_new_key(
    key_dir: Path,
) -> None:
    keys = FileKeyStore(key_dir)
    old, ctx = seal(ZONE_C01_1)
    assert open_pin_block(old, ctx, keys).pin == Pin("802614")

    write(key_dir / "zone" / "C01" / "1.key", ZONE_C02_1.hex())

    with pytest.raises(PinRefused) as refused:
        open_pin_block(old, ctx, keys)
    assert refused.value.why == Why.DOES_NOT_DECRYPT
    new, _ = seal(ZONE_C02_1)
    assert open_pin_block(new, ctx, keys).pin == Pin("802614")


def test_keys_are_read_only_when_asked_for(key_dir: Path) -> None:
    write(key_dir / "zone" / "C01" / "5.key", BAD)
    keys = FileKeyStore(key_dir)

    assert keys.zone_key("C01", 1) == ZONE_C01_1
    with pytest.raises(KeyStoreError):
        keys.zone_key("C01", 5)


@pytest.mark.parametrize("bad", [BAD, "ab" * 31, "ab" * 33, "zz" * 32, ""])
def test_a_malformed_key_file_names_the_file_and_not_its_content(key_dir: Path, bad: str) -> None:
    path = key_dir / "zone" / "C01" / "3.key"
    write(path, bad)

    with pytest.raises(KeyStoreError) as caught:
        FileKeyStore(key_dir).zone_key("C01", 3)

    assert str(path) in str(caught.value)
    assert bad not in str(caught.value) or bad == ""
    assert caught.value.__cause__ is None and caught.value.__context__ is None


def test_an_unreadable_key_file_is_an_error_naming_the_file(key_dir: Path) -> None:
    path = key_dir / "zone" / "C01" / "4.key"
    path.mkdir()

    with pytest.raises(KeyStoreError, match="unreadable") as caught:
        FileKeyStore(key_dir).zone_key("C01", 4)

    assert str(path) in str(caught.value)


@pytest.mark.parametrize("bad", [BAD, "ab" * 31, "zz" * 32, ""])
def test_a_malformed_key_variable_names_the_variable_and_not_its_value(
    env: pytest.MonkeyPatch, bad: str
) -> None:
    env.setenv("SSCARD_PVK_PVK1", bad)

    with pytest.raises(KeyStoreError) as caught:
        EnvKeyStore().verification_key_by_id("PVK1")

    assert "SSCARD_PVK_PVK1" in str(caught.value)
    assert bad not in str(caught.value) or bad == ""


def test_a_malformed_zone_key_variable_names_the_variable(env: pytest.MonkeyPatch) -> None:
    env.setenv("SSCARD_ZONE_KEY_C01_1", BAD)

    with pytest.raises(KeyStoreError, match="SSCARD_ZONE_KEY_C01_1") as caught:
        EnvKeyStore().zone_key("C01", 1)

    assert BAD not in str(caught.value)


def test_no_current_pvk_is_an_error_naming_where_it_was_looked_for(
    tmp_path: Path, env: pytest.MonkeyPatch
) -> None:
    env.delenv("SSCARD_PVK_CURRENT")

    with pytest.raises(KeyStoreError, match="SSCARD_PVK_CURRENT"):
        EnvKeyStore().verification_key()
    with pytest.raises(KeyStoreError, match="current"):
        FileKeyStore(tmp_path).verification_key()


def test_a_current_pvk_without_its_key_is_an_error(env: pytest.MonkeyPatch) -> None:
    env.setenv("SSCARD_PVK_CURRENT", "PVK7")

    with pytest.raises(KeyStoreError, match="PVK7 is missing"):
        EnvKeyStore().verification_key()


def test_a_malformed_current_pvk_id_is_an_error(key_dir: Path) -> None:
    write(key_dir / "pvk" / "current", "PVK 2; rm -rf")

    with pytest.raises(KeyStoreError, match="current"):
        FileKeyStore(key_dir).verification_key()


def test_the_configured_store_is_the_environment_alone_without_a_key_dir(
    env: pytest.MonkeyPatch,
) -> None:
    keys = key_store()

    assert isinstance(keys, EnvKeyStore)
    assert keys.zone_key("C02", 1) == ZONE_C02_1


def test_the_environment_wins_over_the_key_dir_key_by_key_and_for_the_current_pvk(
    key_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    override = b"\x77" * 32
    monkeypatch.setenv("SSCARD_KEY_DIR", str(key_dir))
    monkeypatch.setenv("SSCARD_ZONE_KEY_C01_1", override.hex())
    monkeypatch.setenv("SSCARD_PVK_PVK9", (b"\x99" * 32).hex())
    monkeypatch.setenv("SSCARD_PVK_CURRENT", "PVK9")
    monkeypatch.delenv("SSCARD_ZONE_KEY_C01_2", raising=False)

    keys = key_store()

    assert keys.zone_key("C01", 1) == override
    assert keys.zone_key("C01", 2) == ZONE_C01_2
    assert keys.verification_key() == ("PVK9", b"\x99" * 32)
    assert keys.verification_key_by_id("PVK1") == PVK1


def test_the_key_dir_names_the_current_pvk_when_the_environment_does_not(
    key_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSCARD_PVK_CURRENT", raising=False)

    keys = key_store({"SSCARD_KEY_DIR": str(key_dir)})

    assert isinstance(keys, LayeredKeyStore)
    assert keys.verification_key() == ("PVK2", PVK2)


def test_a_memory_store_answers_from_its_dicts_and_refuses_short_keys() -> None:
    keys = MemoryKeyStore({("C01", 1): ZONE_C01_1}, {"PVK1": PVK1}, "PVK1")

    assert keys.zone_key("C01", 1) == ZONE_C01_1
    assert keys.zone_key("C01", 2) is None
    assert keys.verification_key() == ("PVK1", PVK1)
    with pytest.raises(KeyStoreError, match="C01/1") as caught:
        MemoryKeyStore({("C01", 1): b"short"}, {})
    assert "short" not in str(caught.value)


def test_no_store_shows_key_material_in_its_repr(key_dir: Path, env: pytest.MonkeyPatch) -> None:
    env.setenv("SSCARD_KEY_DIR", str(key_dir))
    stores: list[KeyStore] = [
        FileKeyStore(key_dir),
        EnvKeyStore(),
        MemoryKeyStore({("C01", 1): ZONE_C01_1}, {"PVK1": PVK1}, "PVK1"),
        key_store(),
    ]
    for keys in stores:
        keys.zone_key("C01", 1)
        keys.verification_key()
    secrets = [k.hex() for k in (ZONE_C01_1, PVK1, PVK2)] + [repr(ZONE_C01_1), repr(PVK2)]

    for keys in stores:
        shown = repr(keys) + str(keys)
        assert not any(s.lower() in shown.lower() for s in secrets), shown
        assert "\\x" not in shown


def test_sandbox_keys_are_written_once_private_and_usable(tmp_path: Path) -> None:
    write_sandbox_keys(tmp_path, ["C01", "C02"])
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    first = {p: p.read_bytes() for p in files}

    write_sandbox_keys(tmp_path, ["C01", "C02"])

    assert {p: p.read_bytes() for p in files} == first
    assert sorted(p.relative_to(tmp_path).as_posix() for p in files) == [
        "pvk/PVK1.key",
        "pvk/current",
        "zone/C01/1.key",
        "zone/C02/1.key",
    ]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    keys = FileKeyStore(tmp_path)
    c01, c02 = keys.zone_key("C01", 1), keys.zone_key("C02", 1)
    assert c01 is not None and c02 is not None and c01 != c02
    pvk_id, pvk = keys.verification_key()
    assert pvk_id == "PVK1" and len(pvk) == 32 and pvk not in (c01, c02)


def test_sandbox_keys_for_a_new_channel_leave_the_others_alone(tmp_path: Path) -> None:
    write_sandbox_keys(tmp_path, ["C01"])
    before = FileKeyStore(tmp_path)
    c01, pvk = before.zone_key("C01", 1), before.verification_key()

    write_sandbox_keys(tmp_path, ["C01", "C03"])

    after = FileKeyStore(tmp_path)
    assert after.zone_key("C01", 1) == c01
    assert after.verification_key() == pvk
    assert after.zone_key("C03", 1) is not None


def test_sandbox_keys_are_written_only_for_party_codes(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_sandbox_keys(tmp_path, ["../etc"])
