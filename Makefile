# Everyday commands, each a thin call to a script or to docker compose; the
# scripts print their own help (e.g. scripts/test --help).
#
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
#   make clean       remove this project's containers, volumes and images
#
# Variables such as IMAGE_TAG, BASE_IMAGE or COMPOSE_PROJECT_NAME pass through
# the environment, as the scripts document.

# The value of the dev.lockstep.project label on everything this project creates.
PROJECT := lockstep

.PHONY: up down test test-unit test-e2e lint lock lock-check smoke doctor parity new-project clean

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
	docker compose run --rm --no-deps serve sh -c 'python -m lockstep.doctor "/checkpoints/runs/$$(cat /checkpoints/latest)/model.pt"'

parity:
	scripts/check-parity

new-project:
	@test -n "$(NAME)" -a -n "$(DEST)" || { echo "usage: make new-project NAME=name DEST=folder" >&2; exit 2; }
	scripts/new-project "$(NAME)" "$(DEST)"

# Only what carries this project's compose project name or its
# dev.lockstep.project label. .ci/build-base-image labels the stand-in base
# image with the template's name, lockstep, so only the template removes it.
# Other projects and BuildKit's caches stay.
clean:
	docker compose down --volumes --remove-orphans
	docker container ls --all --quiet --filter label=dev.lockstep.project=$(PROJECT) | xargs --no-run-if-empty docker container rm --force
	docker volume ls --quiet --filter label=dev.lockstep.project=$(PROJECT) | xargs --no-run-if-empty docker volume rm
	docker image ls --quiet --filter label=dev.lockstep.project=$(PROJECT) | sort -u | xargs --no-run-if-empty docker image rm --force
