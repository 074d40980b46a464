"""`python -m engine`: the engine process; its code is engine/process/main.py."""

from engine.process.main import run

if __name__ == "__main__":
    run()
