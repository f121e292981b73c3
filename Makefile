# podnet.fabric — `make lab` builds the namespace lab; `make test` runs everything CI runs.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
COLL := .collections/ansible_collections/podnet/fabric
MODE ?= vxlan
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: all venv link test unit integration ipip-vm sanity lint lab lab-down clean

all: venv

$(BIN)/ansible: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $@

link:
	@mkdir -p $(dir $(COLL)) && ln -sfn ../../.. $(COLL)

venv: $(BIN)/ansible link

unit: venv
	$(BIN)/python -m pytest -q tests/unit

integration: venv
	$(BIN)/python -m pytest -q tests/integration

test: venv unit integration

clean:
	rm -rf $(VENV) .collections .build
