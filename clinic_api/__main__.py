from clinic_api.cli import app

app()
