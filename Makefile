# Everyday commands, each a thin call to a script or to docker compose; the
# scripts print their own help (e.g. scripts/test --help).
#
#   make help        this list (the default goal)
#   make up          build, train, then serve on 127.0.0.1, port $SERVE_PORT (default 8501)
#   make down        stop and remove the containers (the checkpoints volume stays)
#   make test        unit tests in the image, then end-to-end tests (scripts/test)
#   make test-unit   unit tests only
#   make test-e2e    end-to-end tests only
#   make lint        every static check CI runs
#   make lock        recompile requirements/lock.txt from requirements/*.in
#   make lock-check  fail when the lock is stale against its inputs
#   make smoke       smoke test against the running stack's newest checkpoint
#   make doctor      diagnose the newest checkpoint in the checkpoints volume
#   make parity      compare the stacks of the two built images
#   make new-project NAME=... DEST=...   start a new project from this one
#   make clean       remove this compose project's containers and checkpoints volume,
#                    and its two images ($IMAGE_NAMESPACE/{train,serve}:$IMAGE_TAG)
#
# Variables such as IMAGE_TAG, BASE_IMAGE or COMPOSE_PROJECT_NAME pass through
# the environment, as the scripts document.

.DEFAULT_GOAL := help
.PHONY: help up down test test-unit test-e2e lint lock lock-check smoke doctor parity new-project clean

# Prints the comment at the top of this file, which lists the targets.
help:
	@sed -n -E '/^#/!q; s/^# ?//; p' $(firstword $(MAKEFILE_LIST))

up:
	docker compose up --build --detach

down:
	docker compose down

test:
	scripts/test

test-unit:
	scripts/test unit

test-e2e:
	scripts/test e2e

lint:
	scripts/lint

lock:
	scripts/lock

lock-check:
	scripts/lock --check

smoke:
	scripts/smoke

doctor:
	docker compose run --rm --no-deps serve sh -c 'run=$$(cat /checkpoints/latest 2>/dev/null) \
	  || { echo "error: no checkpoint yet; train one with docker compose run --rm train" >&2; exit 1; }; \
	  python -m lockstep.doctor "/checkpoints/runs/$$run/model.pt"'

parity:
	scripts/check-parity

new-project:
	@test -n "$(NAME)" -a -n "$(DEST)" || { echo "usage: make new-project NAME=name DEST=folder" >&2; exit 2; }
	scripts/new-project "$(NAME)" "$(DEST)"

# Only this checkout's compose project (COMPOSE_PROJECT_NAME, else `name:` in
# docker-compose.yml) and the images its services name, so that other compose
# projects, other tags of the images, the stand-in base image, scripts/lock's
# pip cache and BuildKit's cache stay.
clean:
	docker compose down --volumes --remove-orphans --rmi all
