"""The engine process (`python -m engine`): entry (`main`), pre-flight, the main
loop (`runner`), command handlers, channels (stdout/stdin/socket) and the campaign's
output files. Never imports torch."""
