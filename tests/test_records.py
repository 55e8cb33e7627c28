"""The one reader of score files: typed ScoreRecords, and a bad line named by file and line."""
import json

import pytest

from bench.errors import DataError
from bench.records import ScoreRecord, read_records, write_scores


def record(**kw):
    return ScoreRecord.from_json({"experiment": "e", "method": "m", "sample": "s0", "metric": "psnr",
                                  "duration_s": 10.0, "n_frames": 250, "value": 20.5, "dataset": "lab-test",
                                  "size": "lab-64", "fps": 25, "seed": 42, "protocol": "p", "provenance": {}, **kw})


def test_written_records_read_back_as_the_same_typed_records(tmp_path):
    records = [record(), record(sample="s1", value=None, missing="n/a (no weights)"),
               record(metric="ssim", windows={"window_s": 5.0, "values": [0.5, 0.4]}, future_field="ignored")]
    path = write_scores(tmp_path / "scores.jsonl", records)
    back = read_records(path)
    assert all(isinstance(r, ScoreRecord) for r in back)
    assert sorted(back, key=repr) == sorted(records, key=repr)
    assert next(r for r in back if r.sample == "s1").missing == "n/a (no weights)"


@pytest.mark.parametrize("line, reason", [
    ('{"method": "m", "sample": "s0"', "is not valid JSON"),
    ('["not", "an", "object"]', "a score record is a JSON object, not list"),
    ('{"experiment": "e", "method": "m", "sample": "s0", "metric": "psnr"}', "lacks ['duration_s']"),
    ('{"experiment": "e", "method": "m", "sample": "s0", "metric": "psnr", "duration_s": 10, "value": "high"}',
     "'value' is 'high', not a number"),
    ('{"experiment": "e", "method": 3, "sample": "s0", "metric": "psnr", "duration_s": 10}', "'method' is 3"),
])
def test_a_bad_line_is_an_error_naming_file_and_line(tmp_path, line, reason):
    path = tmp_path / "scores.jsonl"
    path.write_text(json.dumps(record().to_json()) + "\n\n" + line + "\n")
    with pytest.raises(DataError) as err:
        read_records(path)
    assert err.value.message.startswith(f"{path}:3") and reason in err.value.message
    assert err.value.fix
