# pcapca developer entry points. Needs only python3 (>= 3.10) and make.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
CAPTURE ?= fixtures/basic.pcap
CORPUS ?= ../shared/corpus

.PHONY: demo test bench instructions fuzz fixtures check-corpus compare soak clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[test,plot]'
	touch $@

demo: $(VENV)/.installed
	@mkdir -p out
	@echo "== pcapca print $(CAPTURE) (first 12 messages)"
	@$(VENV)/bin/pcapca print $(CAPTURE) --quiet | head -n 12
	@echo
	@echo "== the same with the PV of every message"
	@$(VENV)/bin/pcapca print $(CAPTURE) --quiet --format '{frame:>4} {role:6} {pv:14} {name} {latency}' | head -n 40
	@echo
	@echo "== pcapca annotate $(CAPTURE) out/annotated.pcapng"
	@$(VENV)/bin/pcapca annotate $(CAPTURE) out/annotated.pcapng
	@echo
	@echo "== pcapca stats fixtures/twoservers.pcap --top 5 (searches nobody answers, a PV served twice, an IOC restart)"
	@$(VENV)/bin/pcapca stats fixtures/twoservers.pcap --top 5 --quiet
	@if command -v tshark >/dev/null 2>&1; then \
	  echo "== tshark -r out/annotated.pcapng -Y frame.comment -T fields -e frame.number -e frame.comment (first 8)"; \
	  tshark -r out/annotated.pcapng -Y frame.comment -T fields -e frame.number -e frame.comment 2>/dev/null | head -n 8; \
	else echo "(install tshark or open out/annotated.pcapng in Wireshark to see the comments)"; fi

test: $(VENV)/.test-installed
	$(PY) -m pytest -q

bench: $(VENV)/.test-installed
	$(PY) bench/bench.py $(BENCH_ARGS)

instructions: $(VENV)/.test-installed
	$(PY) bench/instructions.py --rev $${REV:-HEAD} $(INSTRUCTIONS_ARGS)

fuzz: $(VENV)/.test-installed
	$(PY) -m pip install --quiet atheris
	$(PY) tests/fuzz_readers.py -max_total_time=$${FUZZ_SECONDS:-60} fixtures/

fixtures: $(VENV)/.installed
	$(PY) scripts/record_fixtures.py --out fixtures

check-corpus: $(VENV)/.installed
	$(PY) scripts/check_corpus.py $(CORPUS)

compare: $(VENV)/.installed
	$(PY) scripts/compare_outputs.py --rev $${REV:-HEAD} $(COMPARE_ARGS)

soak: $(VENV)/.installed
	$(PY) -m pip install --quiet pyepics softioc
	$(PY) scripts/soak.py $(SOAK_ARGS)

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis *.egg-info
