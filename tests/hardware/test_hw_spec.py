"""The one-line text form of a HardwareModel (``neurosim run ... --set hardware=...``)."""
from __future__ import annotations

import pytest

from neurosim import hardware as hw
from neurosim.hardware.spec import format_hardware, parse_hardware


@pytest.mark.parametrize("text, model", [
    ("weights:Quantize(6, bound=2.0)", hw.HardwareModel(weights=[hw.Quantize(6, bound=2.0)])),
    ("weights:quantize(4,bound=1.0) ; weights:WriteNoise(0.02)",
     hw.HardwareModel(weights=[hw.Quantize(4, bound=1.0), hw.WriteNoise(0.02)])),
    ("reads:AdditiveNoise(0.01);seed=3", hw.HardwareModel(reads=[hw.AdditiveNoise(0.01)], seed=3)),
    ("coding=event;threshold=0.01", hw.HardwareModel(coding="event", threshold=0.01)),
    ("adc:Converter(8, 2.0)", hw.HardwareModel(adc=[hw.Converter(8, 2.0)])),
])
def test_text_gives_the_model_and_back(text, model):
    m = parse_hardware(text)
    assert m == model
    assert parse_hardware(format_hardware(m)) == model


@pytest.mark.parametrize("text", ["none", "", "  None ", None])
def test_none_is_no_hardware(text):
    assert parse_hardware(text) is None
    assert format_hardware(None) == "none"


@pytest.mark.parametrize("text, fragment", [
    ("weights:Foo(1)", "unknown transform 'Foo'"),
    ("wires:Quantize(3)", "unknown site 'wires'"),
    ("weights:Quantize(bits)", "must be literals"),
    ("coding=event;thr=1", "unknown setting 'thr'"),
    ("seed=x", "seed must be a int"),
    ("junk", "expected SITE:Transform(args) or KEY=VALUE"),
    ("reads:Quantize(4)", "cannot be applied at site 'reads'"),
    ("weights:Quantize(4, nope=1)", "unexpected keyword"),
    (3, "must be a text"),
])
def test_bad_text_names_the_item(text, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        parse_hardware(text)
