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
    ("seed=x", "seed must be an int, got 'x'"),
    ("seed=3.7", "seed must be an int, got '3.7'"),
    ("junk", "expected SITE:Transform(args) or KEY=VALUE"),
    ("reads:Quantize(4)", "cannot be applied at site 'reads'"),
    ("weights:Quantize(4, nope=1)", "unexpected keyword"),
    (3, "must be a text"),
])
def test_bad_text_names_the_item(text, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        parse_hardware(text)


@pytest.mark.parametrize("algorithm, hardware, ok", [
    ("bp", "coding=event;threshold=0.01", False), ("fpa", "weights:Quantize(8)", False), ("pc", "coding=event", True),
    ("bp", "weights:Quantize(8)", True), ("fpa", "none", True)])
def test_experiments_check_the_algorithm_a_substrate_can_train_before_the_run(algorithm, hardware, ok):
    """digits with event coding and algorithm=bp trained nothing but failed at the first batch (exit 1, and in an
    experiment training pc first, only after pc had trained); the configuration is refused up front (exit 2)."""
    from neurosim import registry
    from neurosim.experiment import ConfigError, params_of, resolve_config
    mod = registry.get("digits")
    over = {"algorithm": algorithm, "hardware": hardware}
    if ok:
        resolve_config(mod.DEFAULTS, over, params_of(mod))
    else:
        with pytest.raises(ConfigError, match=r"trains with algorithms pc and bp only, and with coding=event"):
            resolve_config(mod.DEFAULTS, over, params_of(mod))


def test_a_text_given_as_a_site_and_a_bad_advance_are_named():
    import neurosim as ns
    with pytest.raises(ValueError, match=r"HardwareModel.weights must be a transform or a list of them.*"
                                         r"parse_hardware\('weights:Quantize\(4\)'\)"):
        hw.HardwareModel(weights="Quantize(4)")
    sim = ns.Simulator(ns.hierarchy([4, 5, 3]), backend="reference", hardware=hw.HardwareModel(weights=[hw.Quantize(8)]))
    for bad in ("10", -1.0, float("nan"), True):
        with pytest.raises(ValueError, match=r"advance: seconds must be a finite number >= 0"):
            sim.hardware.advance(bad)
    sim.hardware.advance(10)
    assert sim.hardware.time == 10.0
