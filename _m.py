import time
import neurosim as ns, neurosim.graph as ng
from neurosim import hardware as hw
nets = {"digits 64-128-10": ns.hierarchy([64, 128, 10], phi="tanh", name="digits"),
        "cnn": ng.cnn((1, 8, 8), channels=(8, 16), n_out=10, name="cnn-digits")}
for n, c in nets.items():
    for t in ("loihi", "loihi2", "spinnaker2", "crossbar"):
        t0 = time.perf_counter()
        try:
            m = hw.map_circuit(c, t, steps=20)
            print(f"{time.perf_counter()-t0:.2f}s", m.summary()); print("   ", m.crossing, m.notes[1:])
        except Exception as e:
            print(n, t, "ERR", e)
