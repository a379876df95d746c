# One date format everywhere in the admin: ISO 8601, in UTC (TIME_ZONE), as project/dates.py writes it.
# Replaces Django's English formats ("Nov. 23, 2026, 8 a.m."), which a locale's own would override.
DATETIME_FORMAT = r"Y-m-d\TH:i:s\Z"
DATE_FORMAT = "Y-m-d"
TIME_FORMAT = r"H:i:s\Z"
SHORT_DATETIME_FORMAT = DATETIME_FORMAT
SHORT_DATE_FORMAT = DATE_FORMAT
