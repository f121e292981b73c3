# podnet.fabric — `make lab` builds the namespace lab; `make test` runs everything CI runs.
# Every target installs what it needs (apt packages, the virtualenvs) on a fresh machine.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
# Python 3.12+ for ansible-core 2.21: pyenv's (its shims only answer for the active version).
PYTHON_221 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3 $(HOME)/.pyenv/versions/3.13*/bin/python3) \
                $(shell command -v python3.12 python3.13 2>/dev/null))
VENV := .venv
BIN := $(VENV)/bin
VENV_221 := .venv-2.21
COLL := .collections/ansible_collections/podnet/fabric
MODE ?= vxlan
# Another lab inventory, e.g. `make lab MODE=bgp LAB_INVENTORY=labs/bgp-tor` (two subnets, the router a BGP ToR).
LAB_INVENTORY ?=
PYTEST := $(BIN)/python -m pytest
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: all deps venv link test suite-host suite-vm unit integration ipip-vm ipip-vm-all sanity sanity-2.19 sanity-2.21 units-2.21 lint \
        molecule bench lab lab-down capture graph clean

all: venv

deps:
	@tests/tools/install-deps

# ansible-core 2.19 on Python 3.11: the controller the lab, the tests and the lint run on.
$(BIN)/ansible: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

# ansible-core 2.21 on Python 3.12: the current line, for sanity, unit and module tests.
$(VENV_221)/bin/ansible: requirements-2.21.txt
	$(PYTHON_221) -m venv $(VENV_221)
	$(VENV_221)/bin/pip install -q --disable-pip-version-check -r requirements-2.21.txt
	touch $@

link:
	@mkdir -p $(dir $(COLL)) && ln -sfn ../../.. $(COLL)

venv: deps $(BIN)/ansible link

unit: venv
	$(PYTEST) -q tests/unit

# The slowest tests named at the end, to see where the suite's time goes.
integration: venv
	$(PYTEST) -q --durations=25 -m "not ipip" tests/integration

# Tests that need a kernel with IPIP, in a qemu VM running a stock Debian kernel (tests/qemu).
# Exit 77 from the harness means qemu cannot run on this machine: a skip, with its reason printed.
# qemu cannot run here (exit 77): a skip on a workstation, a failure under CI=true, so a green CI
# run always contains the IPIP suite.
QEMU_RUN ?= tests/qemu/run
# make test runs the IPIP suite without its vm_extra repeats (pytest.ini); `make ipip-vm-all` runs them too.
IPIP_MARK ?= ipip and not vm_extra
ipip-vm-all:
	@$(MAKE) ipip-vm IPIP_MARK=ipip
ipip-vm: venv
	@$(QEMU_RUN) --timeout 4800 -- $(BIN)/python -m pytest -q --durations=10 -o timeout=3600 -m "$(IPIP_MARK)" tests/integration; rc=$$?; \
	 if [ $$rc = 77 ] && [ "$${CI:-}" = true ]; then echo "FAILED: ipip tests did not run: qemu cannot run on this machine (reason above) and CI=true"; exit 1; fi; \
	 if [ $$rc = 77 ]; then echo "SKIPPED: ipip tests: qemu cannot run on this machine (reason above)"; exit 0; fi; \
	 exit $$rc

sanity-2.19: venv
	tests/tools/ansible-test-sanity $(VENV) 3.11

sanity-2.21: venv $(VENV_221)/bin/ansible
	tests/tools/ansible-test-sanity $(VENV_221) 3.12

units-2.21: venv $(VENV_221)/bin/ansible
	$(VENV_221)/bin/python -m pytest -q tests/unit

sanity: sanity-2.19 sanity-2.21

# molecule test: the namespace scenario and the Docker scenario (a private engine it starts and
# stops itself), in vxlan and host-gw (ipip where the kernel has it), and the breakage test.
molecule: venv
	tests/molecule/run-all

lint: venv
	$(BIN)/ansible-lint

# Benchmarks: converge cost vs N per mode against baselines, and data-plane throughput per mode;
# regenerates docs/benchmarks.md and its plots (bench/README.md). Long: see BENCH_ARGS.
BENCH_ARGS ?=
bench: venv
	bench/run $(BENCH_ARGS)

# Two lines of work, one a core, side by side: the qemu VM's IPIP suite (software emulation, the
# longest) starts at once, then molecule; unit, lint, sanity and the namespace tests run on the
# other core. -j2 gives each line one job slot, so each runs its steps in order while both run;
# when one line ends, the other may use the freed slot too. Their output interleaves as it comes
# (make's -O would hold each back until it ends).
# The host line runs at nice 10 (SUITE_HOST_NICE): the VM can use one core only (one emulated CPU)
# and has a hard timeout, while the host line's bursts (a playbook's workers and their modules)
# would take half of the VM's core; at nice 10 they take what the VM leaves.
test: venv
	@$(MAKE) --no-print-directory -j2 suite-host suite-vm SUITE_HOST_NICE="nice -n 10"

suite-host: venv
	@$(SUITE_HOST_NICE) $(MAKE) --no-print-directory unit units-2.21 lint sanity integration

suite-vm: venv
	@$(MAKE) --no-print-directory ipip-vm molecule

# The teaching lab: nodes, switch and router as network namespaces on this machine.
# LAB=alice builds lab alice beside any others (every namespace named alice-...: alice-host1,
# alice-pod-a, alice-sw-..., alice-rt), with the same addresses; lab-down LAB=alice removes only it.
# LAB_ARGS: more ansible-playbook arguments for every playbook of the lab (e.g. -e podnet_state_dir=...).
LAB ?=
LAB_ARGS ?=
LAB_VARS = $(if $(LAB),-e lab=$(LAB)) $(if $(LAB_INVENTORY),-i $(LAB_INVENTORY)) $(LAB_ARGS)
lab: venv
	@if [ "$(MODE)" = ipip ] && ! tests/tools/kernel-has ipip; then \
	  echo "This kernel has no IPIP: running the ipip lab inside the qemu VM of tests/qemu (it ends with the VM)."; \
	  PODNET_LAB=$(LAB) tests/qemu/run -- tests/tools/lab-up ipip -e podnet_state_dir=/run/podnet $(LAB_ARGS); \
	else \
	  PODNET_LAB=$(LAB) tests/tools/lab-up $(MODE) $(if $(LAB_INVENTORY),-i $(LAB_INVENTORY)) $(LAB_ARGS); \
	fi

lab-down: venv
	@if ip netns list | awk '{print $$1}' | grep -qxF -e "$(if $(LAB),$(LAB)-)host1" -e "$(if $(LAB),$(LAB)-)host2"; then \
	  $(BIN)/ansible-playbook playbooks/teardown.yml $(LAB_VARS) || true; fi
	$(BIN)/ansible-playbook playbooks/lab.yml -e lab_state=absent $(LAB_VARS)

# Captures to open in Wireshark: converge the lab (LAB) in MODE, then write what one pod-to-pod
# ping looks like on the sender's underlay and on its tunnel device into captures/ as
# <lab>-<mode>-underlay.pcap and <lab>-<mode>-<device>.pcap (ipip: run it where the kernel has IPIP).
capture: venv
	@if [ "$(MODE)" = ipip ] && ! tests/tools/kernel-has ipip; then \
	  echo "This kernel has no IPIP, so no ipip capture here (make ipip-vm checks one inside the qemu VM)."; exit 1; fi
	$(BIN)/ansible-playbook site.yml -e mode=$(MODE) $(LAB_VARS)
	$(BIN)/ansible-playbook playbooks/capture.yml -e mode=$(MODE) -e capture_dir=$(CURDIR)/captures $(LAB_VARS)

# The lab as a picture: graphs/<lab>-<mode>.svg and .png, drawn with graphviz from the inventory
# and what the nodes hold (the lab must be up).
graph: venv
	$(BIN)/ansible-playbook playbooks/graph.yml -e mode=$(MODE) -e graph_dir=$(CURDIR)/graphs $(LAB_VARS)

clean:
	rm -rf $(VENV) $(VENV_221) .venv-molecule .venv-bench .collections .build
