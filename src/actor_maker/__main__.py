"""``python -m actor_maker`` is the ``actor-maker`` command."""

from actor_maker.cli import main

main()
