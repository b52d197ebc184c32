"""The loop-trained ``triplet`` unseen classifier passes avood's conformance kit and learns."""

from __future__ import annotations

from avood_core.testing import ComponentContract, make_context, make_kit_data
from avood_example.triplet import TripletEmbedding


class TestTripletConforms(ComponentContract):
    """The protocol checks every avood component passes, at the ``quick`` budget."""

    component = TripletEmbedding
    name = "triplet"


def test_the_loop_trains_it_and_fills_its_stats():
    data = make_kit_data()
    model = TripletEmbedding(dim=16, epochs=4, steps=30, batch_size=32)
    model.fit(data.task.train, data.task.text, make_context(data))
    history = model.stats.history
    assert model.fitted and model.stats.steps == 120 and len(history) == 4
    assert history[-1]["loss"] < history[0]["loss"]
