from trainwell.history import History


def test_round_trips_through_json_and_csv(tmp_path):
    history = History([{"epoch": 1, "loss": 0.5, "val_loss": 0.6}, {"epoch": 2, "loss": 0.25, "val_loss": 0.4}])
    history.to_json(tmp_path / "h.json")
    assert History.from_json(tmp_path / "h.json") == history
    text = history.to_csv(tmp_path / "h.csv")
    assert text.splitlines() == ["epoch,loss,val_loss", "1,0.5,0.6", "2,0.25,0.4"]
    assert history["val_loss"] == [0.6, 0.4] and history.last["epoch"] == 2
    assert not list(tmp_path.glob(".*tmp"))
