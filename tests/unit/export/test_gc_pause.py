"""The export pauses the cyclic GC while it builds; it must always come back on."""
import gc

import pytest

from services.export.adapters.gc_pause import cyclic_gc_paused


def test_the_cyclic_gc_is_off_inside_and_back_on_after_even_on_an_error():
    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        with cyclic_gc_paused():
            assert not gc.isenabled()
            raise RuntimeError("the build failed")
    assert gc.isenabled()


def test_overlapping_pauses_leave_it_on_once_the_first_one_ends():
    first, second = cyclic_gc_paused(), cyclic_gc_paused()
    first.__enter__()
    second.__enter__()  # a second build starts while the first runs
    first.__exit__(None, None, None)
    assert gc.isenabled()  # whoever paused it resumed it
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_gc_someone_else_turned_off_stays_off():
    gc.disable()
    try:
        with cyclic_gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
