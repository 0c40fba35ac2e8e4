"""Test support, not product: the packet/capture encoder, the synthetic capture generator
and the raw walker with its array passes off, the array-pass walker's oracle (``raw_oracle``).

Used by the tests, the benchmarks (scripts/bench*.py), the fuzz campaign and the sample
generator (scripts/make_sample.py, which writes the checked-in resources/samples/). They
import it as ``tests.support`` with the repository root on ``sys.path`` (pytest puts it there
because ``tests`` is a package; the scripts insert it themselves). Neither the wheel
(``packages.find`` includes only ``app*``) nor the desktop bundle holds it.
"""
