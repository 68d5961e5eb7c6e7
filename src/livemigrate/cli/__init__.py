"""The `livemigrate` command line: serve, admin, source …, target …"""
