import pytest

from icanets.config import config_from_dict, load_config
from icanets.errors import ConfigError

GOOD = """
[study]
name = "x"
dataset = "bids"

[bold]
task = "rest"

[participants]
required = ["group"]
numeric = ["age"]

[sessions]
numeric = ["hdrs"]

[sessions.roles]
TP1 = "ses-1"
TP3 = "ses-3"

[derived]
remitter = "hdrs[TP3] <= 7"
change = "hdrs[TP1] - hdrs[ses-3]"
"""


def test_good_config(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(GOOD)
    config = load_config(path)
    assert config.dataset == (tmp_path / "bids").resolve()
    assert config.bold_filters == {"task": "rest"}
    assert config.session_roles == {"TP1": "ses-1", "TP3": "ses-3"}
    assert list(config.derived) == ["remitter", "change"]
    assert config.resolve_session("TP3") == "ses-3"
    assert config.resolve_session("ses-2") == "ses-2"


@pytest.mark.parametrize(
    "text, message",
    [
        ("[study]\nnmae = 'x'\n", r"line 2: \[study\] nmae: unknown key"),
        ("[studdy]\nname = 'x'\n", r"studdy: unknown section"),
        ("[participants]\nnumeric = 'age'\n", r"line 2: \[participants\] numeric: numeric columns must be list"),
        ("[bold]\nsub = '01'\n", r"unknown key"),
        ("[sessions.roles]\nTP1 = 'one'\n", r"line 2: \[sessions.roles\] TP1: must be a session label"),
        ("[derived]\nx = 'hdrs[TP9] > 1'\n", r"line 2: \[derived\] x: session 'TP9'"),
        ("[derived]\nx = 'a +'\n", r"line 2: \[derived\] x: expected a number"),
        ("[derived]\nx = 3\n", r"must be an expression in quotes"),
        ("[study\n", r"not valid TOML"),
    ],
)
def test_bad_configs_name_key_and_line(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read study config"):
        load_config(tmp_path / "nope.toml")


def test_config_from_dict_without_file():
    config = config_from_dict({"derived": {"y": "age * 2"}})
    assert config.derived["y"].names() == {("age", None)}
