from trainwell.train.history import History


def test_round_trips_through_json_and_csv(tmp_path):
    history = History([{"epoch": 1, "loss": 0.5, "val_loss": 0.6}, {"epoch": 2, "loss": 0.25, "val_loss": 0.4}])
    history.to_json(tmp_path / "h.json")
    assert History.from_json(tmp_path / "h.json") == history
    text = history.to_csv(tmp_path / "h.csv")
    assert text.splitlines() == ["epoch,loss,val_loss", "1,0.5,0.6", "2,0.25,0.4"]
    assert history["val_loss"] == [0.6, 0.4] and history.last["epoch"] == 2
    assert not list(tmp_path.glob(".*tmp"))


def test_a_diverged_history_is_valid_json_and_reads_back_as_nan(tmp_path):
    import math

    from helpers import strict_json

    history = History([{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": math.nan, "val_loss": math.inf}],
                      steps={"lr": [0.1, math.nan]})
    history.to_json(tmp_path / "h.json")
    data = strict_json((tmp_path / "h.json").read_text())
    assert data["epochs"][1]["loss"] is None and data["steps"]["lr"] == [0.1, None]
    back = History.from_json(tmp_path / "h.json")
    assert math.isnan(back["loss"][1]) and math.isnan(back["val_loss"][1]) and math.isnan(back.steps["lr"][1])
    assert back["loss"][0] == 0.5
