from alerting.cli import app

app(prog_name="alerting")
