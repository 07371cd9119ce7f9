"""The package root: what `dir()` lists and what printing a result shows."""

import numpy as np

import brain_tumor_edge
from tests.conftest import sample_files


def test_dir_lists_the_api_and_nothing_of_the_machinery():
    listed = dir(brain_tumor_edge)
    assert listed == sorted(brain_tumor_edge.__all__)
    assert {"load_model", "classify_folder", "classify_file", "__version__"} <= set(listed)
    assert not {"annotations", "import_module", "runtime"} & set(listed)


def test_a_printed_result_is_one_short_line_of_its_cells():
    (result,) = brain_tumor_edge.classify_file(sample_files()[0])
    shown = repr(result)
    assert shown.startswith(f"ImageResult(name={str(sample_files()[0])!r}, prediction={result.prediction!r}")
    assert "\n" not in shown and len(shown) < 200 and "array" not in shown
    blank = brain_tumor_edge.classify_array(np.zeros((200, 200), np.uint8))
    assert "review='out of scope: blank" in repr(blank) and "prediction=''" in repr(blank)
