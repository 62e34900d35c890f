"""Run inside fresh network and PID namespaces (``unshare -rnpm --fork
--mount-proc``): a caproto IOC and caproto-get on 127.0.0.1 while tshark
captures from the pcapca extcap interface; then the extcap stopped by
SIGTERM. Prints one JSON object: what happened and which processes were left.

    python live_capture.py HOME OUT.pcapng SECONDS
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


def others():
    """The processes of this PID namespace besides this one and the IOC."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in (os.getpid(), IOC.pid):
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if cmd:
                found.append(cmd.decode(errors="replace").strip())
    return found


def settle():
    """Wait (up to 10 s) until the processes are gone; the ones left."""
    for _ in range(100):
        left = others()
        if not left:
            return []
        time.sleep(0.1)
    return others()


home, out, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3])
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
env = dict(os.environ, HOME=home, PYTHONPATH=str(ROOT),
           EPICS_CAS_INTF_ADDR_LIST="127.0.0.1", EPICS_CAS_AUTO_BEACON_ADDR_LIST="NO",
           EPICS_CAS_BEACON_ADDR_LIST="127.0.0.1", EPICS_CA_ADDR_LIST="127.0.0.1",
           EPICS_CA_AUTO_ADDR_LIST="NO")
IOC = subprocess.Popen([PY, str(ROOT / "scripts" / "fixture_ioc.py"), "--prefix", "LIVE:"],
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
result = {}
try:
    shark = subprocess.Popen(["tshark", "-i", "pcapca", "-o", "extcap.pcapca.iface:lo",
                              "-a", f"duration:{seconds}", "-w", out], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for _ in range(seconds * 5):     # (until the extcap has started dumpcap: tshark's
        if any(cmd.split()[0].endswith("dumpcap") and " -w -" in cmd for cmd in others()):
            break                    # start-up is slow on a busy machine)
        time.sleep(0.1)
    time.sleep(0.5)
    get = subprocess.run([PY, "-m", "caproto.commandline.get", "--no-repeater",
                          "LIVE:dbl", "LIVE:str"], env=env, capture_output=True, timeout=30)
    result["get"] = get.stdout.decode()
    shark_out, shark_err = shark.communicate(timeout=60)
    result["tshark_status"] = shark.returncode
    result["tshark_stderr"] = [line for line in shark_err.decode().splitlines()
                               if "Running as user" not in line]
    result["left_after_tshark"] = settle()

    # the extcap alone, stopped by SIGTERM as Wireshark stops it
    with tempfile.TemporaryDirectory() as tmp:
        fifo = os.path.join(tmp, "fifo")
        os.mkfifo(fifo)
        extcap = subprocess.Popen([os.path.join(home, ".config", "wireshark", "extcap",
                                                "pcapca-extcap"),
                                   "--capture", "--extcap-interface", "pcapca", "--fifo", fifo,
                                   "--iface", "lo"], env=env, stderr=subprocess.PIPE)
        with open(fifo, "rb") as reader:
            head = reader.read(4)           # (the pcapng section header's type)
            subprocess.run([PY, "-m", "caproto.commandline.get", "--no-repeater", "LIVE:dbl"],
                           env=env, capture_output=True, timeout=30)
            time.sleep(1)
            running = others()
            extcap.send_signal(signal.SIGTERM)
            reader.read()
        result["signal_head"] = head.hex()
        result["running_before_signal"] = running
        result["extcap_status"] = extcap.wait(timeout=30)
        result["extcap_stderr"] = extcap.stderr.read().decode()
        result["left_after_signal"] = settle()
finally:
    IOC.terminate()
    IOC.wait(timeout=30)
print(json.dumps(result))
