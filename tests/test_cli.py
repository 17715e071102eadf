import pytest

from icanets import __version__
from icanets.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"icanets {__version__}"


@pytest.mark.parametrize("command", [[], ["inspect"], ["simulate"]])
def test_help_everywhere(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main(command + ["--help"])
    assert exc.value.code == 0
    assert "usage: icanets" in capsys.readouterr().out


def test_simulate_then_inspect(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "s"), "--preset", "tiny", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "Simulated the 'tiny' study (seed 2)" in out
    assert main(["inspect", str(tmp_path / "s" / "bids"), "--config", str(tmp_path / "s" / "study.toml")]) == 0
    out = capsys.readouterr().out
    assert "14 subjects" in out and "TR = 0.8 s" in out
    assert "ses-3 (TP3)" in out and "remitter" in out and "hdrs_change_pct" in out


def test_simulate_realism_options_and_inspect_checks_ica_settings(tmp_path, capsys):
    import json

    assert main(["simulate", str(tmp_path / "s"), "--preset", "tiny", "--factor", "spikes=harsh",
                 "--factor", "noise=realistic", "--quiet"]) == 0
    realism = json.loads((tmp_path / "s" / "truth" / "truth.json").read_text())["realism"]
    assert realism["spikes"] == "harsh" and realism["noise"] == "realistic"
    assert realism["misregistration"] == "realistic" and realism["drift"] == "off"  # the preset's own levels
    assert main(["simulate", str(tmp_path / "o"), "--preset", "tiny", "--realism", "off", "--quiet"]) == 0
    assert set(json.loads((tmp_path / "o" / "truth" / "truth.json").read_text())["realism"].values()) == {"off"}
    assert main(["simulate", str(tmp_path / "x"), "--preset", "tiny", "--factor", "spikes"]) == 2
    assert "--factor must be NAME=LEVEL" in capsys.readouterr().err
    assert main(["simulate", str(tmp_path / "x"), "--preset", "tiny", "--factor", "wobble=harsh"]) == 2
    assert "unknown realism factor(s) wobble" in capsys.readouterr().err
    config = tmp_path / "s" / "study.toml"
    config.write_text(config.read_text() + "\n[ica]\nmin_stability = 7\n")
    assert main(["inspect", str(tmp_path / "s" / "bids"), "--config", str(config)]) == 2
    assert "line" in (err := capsys.readouterr().err) and "min_stability must lie in [0, 1]" in err


def test_errors_exit_2_with_a_message(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "icanets inspect: error: dataset folder not found" in err
    assert main(["simulate", str(tmp_path), "--preset", "tiny"]) == 2
    assert "already exists" in capsys.readouterr().err
