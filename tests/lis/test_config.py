"""Configuration: TOML file, LIS_* overrides, one clear error naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from lis.config import ConfigError, load_config, render_config

GOOD = """
[database]
url = "sqlite:///{dir}/lis.db"
[web]
host = "127.0.0.1"
port = 8080
[[instruments]]
name = "xn-1"
profile = "generic-astm"
protocol = "astm"
transport = "tcp-server"
host = "127.0.0.1"
port = 5001
encoding = "latin-1"
[[instruments]]
name = "c311"
profile = "generic-astm"
protocol = "astm"
transport = "serial"
device = "/dev/ttyS0"
baudrate = 9600
bytesize = 8
parity = "N"
stopbits = 1
[[emr]]
name = "his"
kind = "hl7-mllp"
host = "127.0.0.1"
port = 2575
[[emr]]
name = "fhir"
kind = "fhir"
base_url = "http://127.0.0.1:8090/fhir"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lis.toml"
    path.write_text(text.format(dir=tmp_path), encoding="utf-8")
    return path


def test_contract_shape_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), env={})
    assert config.database_url == f"sqlite:///{tmp_path}/lis.db"
    assert config.web.port == 8080
    assert [i.name for i in config.instruments] == ["xn-1", "c311"]
    assert config.instruments[1].device == "/dev/ttyS0"
    assert config.emr[1].base_url.endswith("/fhir")
    assert config.data_dir == tmp_path  # defaults to the config file's folder


def test_defaults_without_file(tmp_path: Path) -> None:
    config = load_config(None, env={"LIS_DATA_DIR": str(tmp_path)})
    assert config.database_url == f"sqlite:///{tmp_path / 'lis.db'}"
    assert config.site.timezone == "Asia/Ho_Chi_Minh"


def test_environment_overrides_every_level(tmp_path: Path) -> None:
    env = {
        "LIS_WEB_PORT": "9090", "LIS_DATABASE_URL": "sqlite:////tmp/other.db", "LIS_SITE_LANGUAGE": "en",
        "LIS_INSTRUMENTS": '[{"name": "a", "profile": "generic-hl7", "protocol": "hl7", "port": 7000}]',
    }
    config = load_config(write(tmp_path, GOOD), env=env)
    assert config.web.port == 9090
    assert config.database_url == "sqlite:////tmp/other.db"
    assert config.site.language == "en"
    assert [i.name for i in config.instruments] == ["a"]


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    assert load_config(None, env={"LIS_CONFIG": str(path)}).web.port == 8080


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[web]\nprot = 1\n", "web.prot: unknown key"),
        ("[web]\nport = 'x'\n", "web.port: Input should be a valid integer"),
        ("bogus = 1\n", "bogus: unknown key"),
        ("[[instruments]]\nname='a'\nprofile='p'\nprotocol='astm'\n",
         "instruments[0]: transport tcp-server needs a port"),
        ("[[instruments]]\nname='a'\nprofile='p'\nprotocol='x'\nport=1\n", "instruments[0].protocol"),
        ("[[instruments]]\nname='a'\nprofile='p'\nprotocol='astm'\ntransport='serial'\n", "needs a device"),
        ("[[instruments]]\nname='a'\nprofile='p'\nprotocol='astm'\nport=1\nencoding='klingon'\n", "unknown encoding"),
        ("[[emr]]\nname='h'\nkind='fhir'\n", "emr[0]: kind fhir needs base_url"),
        ("[web\n", "not valid TOML"),
    ],
)
def test_invalid_config_names_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value).startswith(str(path) + ": ")
    assert expected in str(info.value)


def test_duplicate_instrument_names_refused(tmp_path: Path) -> None:
    text = "[[instruments]]\nname='a'\nprofile='p'\nprotocol='astm'\nport=1\n" * 2
    with pytest.raises(ConfigError, match="duplicate name 'a'"):
        load_config(write(tmp_path, text), env={})


def test_missing_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "nope.toml", env={})


def test_bad_environment_json(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="LIS_INSTRUMENTS"):
        load_config(None, env={"LIS_INSTRUMENTS": "[oops", "LIS_DATA_DIR": str(tmp_path)})


def test_render_round_trips(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), env={})
    again = write(tmp_path, render_config(config).replace("{", "{{").replace("}", "}}"))
    assert load_config(again, env={}) == config
