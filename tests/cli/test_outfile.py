"""annotate's output safety (pcapca.cli.outfile) in this process: a signal
that another thread receives still waits for the end of a held section."""
import os
import signal
import threading
import time

import pytest

from pcapca.cli import outfile


@pytest.mark.parametrize("sig", [signal.SIGUSR2, signal.SIGINT])
def test_a_signal_given_to_another_thread_waits_for_the_held_section(sig):
    """numpy's threads block no signal, so the kernel gives them the ones
    this thread blocks, and Python runs the handler here all the same."""
    stop = threading.Event()
    helper = threading.Thread(target=stop.wait)     # (a thread that blocks no signal)
    helper.start()
    restore = outfile.unwind_on_signals()
    done = []
    try:
        with pytest.raises(outfile.Interrupted) as raised:
            with outfile.signals_held():
                os.kill(os.getpid(), sig)
                for _ in range(200):                # (the handler runs between these)
                    time.sleep(0.001)
                done.append("the section ended")
    finally:
        restore()
        stop.set()
        helper.join()
    assert (done, raised.value.signum) == (["the section ended"], sig)
    assert signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler)
