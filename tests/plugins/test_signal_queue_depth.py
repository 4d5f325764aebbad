"""Queue depth: the model's requests in flight and queued, against the node's slots."""

from __future__ import annotations

import pytest
from herd_plugins.signal_queue_depth import QueueDepthSignal

from tests.plugins.node_factory import MODEL, make_node, make_request, make_signal


@pytest.mark.parametrize(
    ("in_flight", "queued", "num_parallel", "expected"),
    [
        ({}, {}, 4, 1.0),  # idle
        ({MODEL: 2}, {}, 4, 0.75),  # half the slots busy
        ({MODEL: 3}, {}, 4, 0.625),  # one slot left
        ({MODEL: 4}, {}, 4, 0.4),  # saturated: the request would wait
        ({MODEL: 4}, {MODEL: 4}, 4, 0.2),  # a full round waiting
        ({MODEL: 1}, {}, 1, 0.4),  # one slot, busy
        ({MODEL: 1}, {MODEL: 1}, 4, 0.4 / 1.25),  # a queue means no free slot for newcomers
        ({"other:1b": 4}, {}, 4, 0.875),  # other models count a quarter
    ],
)
def test_queue_depth_scores_load_against_slots(in_flight, queued, num_parallel, expected) -> None:
    view = make_node(in_flight=in_flight, queued=queued, num_parallel=num_parallel)
    signal = make_signal(QueueDepthSignal)
    assert signal.score(make_request(), view) == pytest.approx(expected)


def test_unknown_parallelism_uses_the_assumed_default() -> None:
    view = make_node(in_flight={MODEL: 2}, num_parallel=0, assumed_parallel=2)
    assert view.slots == 2
    assert make_signal(QueueDepthSignal).score(make_request(), view) == pytest.approx(0.4)
