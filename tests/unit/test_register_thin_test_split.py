"""A test split too thin for the gate's interval is bad data with what to do, not a traceback."""

from __future__ import annotations

import numpy as np
import pytest

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components.register import stats


@pytest.mark.parametrize("labels", [[1, 0, 0], [1, 1, 0], [0, 0, 0, 0]])
def test_delong_on_a_thin_test_split_names_the_classes_and_the_fix(labels):
    y = np.array(labels)
    with pytest.raises(DataError, match="needs at least two of each") as refused:
        stats._delong(y, [np.linspace(0, 1, len(y))])
    assert "split_fractions" in str(refused.value) and refused.value.exit_code == 2
