"""Static reference tables for the generated portfolio.

Every transmission region lists the utilities that serve it, each utility its state,
load zones and a few cities (with a 3-digit ZIP prefix), so a generated meter's
utility, load zone and address always agree with its region. Enum values follow
Leap's published definitions.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Utility:
    name: str
    state: str
    load_zones: tuple[str, ...]
    cities: tuple[tuple[str, str], ...]
    tariffs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Program:
    identifier: str
    period_prefix: str
    # months (1-12) where a multi-month delivery period starts; empty: monthly periods
    season_starts: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Region:
    name: str
    timezone: str
    utilities: tuple[Utility, ...]
    programs: tuple[Program, ...]


REGIONS: tuple[Region, ...] = (
    Region(
        "CAISO",
        "America/Los_Angeles",
        (
            Utility(
                "PGE",
                "CA",
                ("PGSB", "PGEB", "PGF1"),
                (("San Jose", "951"), ("Oakland", "946"), ("Fresno", "937")),
                ("E-1", "E-TOU-C", "B-19"),
            ),
            Utility(
                "SCE",
                "CA",
                ("SCEC", "SCEN"),
                (("Irvine", "926"), ("Pasadena", "911")),
                ("TOU-D-4-9PM", "TOU-GS-1"),
            ),
            Utility("SDGE", "CA", ("SDG1",), (("San Diego", "921"),), ("TOU-DR1", "AL-TOU")),
        ),
        (Program("CCA", "CAISO-CCA"), Program("ELRP", "CAISO-ELRP"), Program("DRAM", "CAISO-DRAM")),
    ),
    Region(
        "ERCOT",
        "America/Chicago",
        (
            Utility(
                "ONCOR",
                "TX",
                ("LZ_NORTH", "LZ_WEST"),
                (("Dallas", "752"), ("Fort Worth", "761")),
                ("RES", "SGS"),
            ),
            Utility("CENTERPOINT", "TX", ("LZ_HOUSTON",), (("Houston", "770"),), ("RS", "GS")),
            Utility(
                "AEP_CENTRAL", "TX", ("LZ_SOUTH",), (("Corpus Christi", "784"),), ("RES", "SGS")
            ),
        ),
        (Program("ERCOT-ERS", "ERCOT-ERS"), Program("NRG-REALTIME", "ERCOT-NRG-REALTIME")),
    ),
    Region(
        "NYISO",
        "America/New_York",
        (
            Utility(
                "CECONY", "NY", ("J",), (("New York", "100"), ("Brooklyn", "112")), ("EL1", "EL9")
            ),
            Utility("PSEGLI", "NY", ("K",), (("Hempstead", "115"),), ("180", "280")),
            Utility(
                "NYS", "NY", ("C", "E"), (("Binghamton", "139"), ("Ithaca", "148")), ("SC1", "SC2")
            ),
            Utility("ORU", "NY", ("G",), (("Middletown", "109"),), ("SC1", "SC2")),
        ),
        (
            # NYISO's SCR capability periods: summer May-Oct, winter Nov-Apr
            Program("NYISO-SCR", "NYISO-SCR", season_starts=(5, 11)),
            Program("CONED-CSRP", "CONED-CSRP"),
        ),
    ),
    Region(
        "ISONE",
        "America/New_York",
        (
            Utility("EVERSOURCE", "MA", (".Z.NEMASSBOST",), (("Boston", "021"),), ("R-1", "G-1")),
            Utility(
                "NATGRID",
                "MA",
                (".Z.WCMASS", ".Z.SEMASS"),
                (("Worcester", "016"), ("Brockton", "023")),
                ("R-1", "G-1"),
            ),
            Utility("UNITIL", "NH", (".Z.NEWHAMPSHIRE",), (("Concord", "033"),), ("D", "G2")),
            Utility("RIE", "RI", (".Z.RHODEISLAND",), (("Providence", "029"),), ("A-16", "C-06")),
        ),
        (Program("MA_DOER-CPS", "MA_DOER-CPS"), Program("NATGRID-CS", "NATGRID-CS")),
    ),
    Region(
        "PJM",
        "America/New_York",
        (
            Utility("COMED", "IL", ("COMED",), (("Chicago", "606"),), ("BES", "RDS")),
            Utility("BGE", "MD", ("BGE",), (("Baltimore", "212"),), ("R", "GS")),
            Utility("PECO", "PA", ("PECO",), (("Philadelphia", "191"),), ("R", "GS")),
            Utility("PSEG", "NJ", ("PSEG",), (("Newark", "071"),), ("RS", "GLP")),
            Utility("DOMINION", "VA", ("DOM",), (("Richmond", "232"),), ("Schedule 1", "GS-1")),
        ),
        (Program("PJM-CAPACITY", "PJM-CAPACITY"),),
    ),
    Region(
        "SERC",
        "America/Chicago",
        (
            Utility("TVA", "TN", ("TVA",), (("Chattanooga", "374"),), ("RS", "GSA")),
            Utility("NES", "TN", ("TVA",), (("Nashville", "372"),), ("RS", "GSA")),
            Utility("MLGW", "TN", ("TVA",), (("Memphis", "381"),), ("RS", "GSA")),
            Utility("KUB", "TN", ("TVA",), (("Knoxville", "379"),), ("RS", "GSA")),
        ),
        (Program("TVA-RPO", "SERC-TVA-RPO"),),
    ),
    Region(
        "WECC_SW",
        "America/Phoenix",
        (Utility("SRP", "AZ", ("SRP",), (("Phoenix", "850"), ("Tempe", "852")), ("E-23", "E-26")),),
        (Program("SRP-RPO", "WECC_SW-SRP-RPO"),),
    ),
    Region(
        "WECC_PC",
        "America/Los_Angeles",
        (Utility("PSE", "WA", ("PSE",), (("Seattle", "981"), ("Bellevue", "980")), ("7", "24")),),
        (Program("PSE-RPO", "WECC_PC-PSE-RPO"),),
    ),
)

REGION_BY_NAME: dict[str, Region] = {r.name: r for r in REGIONS}

ENROLLMENT_STATUSES = ("ACTIVE", "ELIGIBLE", "INELIGIBLE", "NOT_PARTICIPATING", "PENDING")
# Cumulative weights (out of 100) for ENROLLMENT_STATUSES in the generated portfolio.
STATUS_WEIGHTS = (55, 70, 82, 90, 100)
METER_TYPES = ("UTILITY_METER", "SUBMETER", "DEVICE")
LOAD_TYPES = (
    "HVAC",
    "EV_CHARGING",
    "BATTERY_STORAGE",
    "COLD_STORAGE",
    "PUMPING",
    "WATER_HEATING",
    "BUILDING_AUTOMATION",
    "GENERATION",
    "MANUFACTURING",
    "LIGHTING",
    "OTHER",
)
PARTNER_ACTIONS: tuple[tuple[str, str, str], ...] = (
    ("IS_AUTHORIZED", "AUTH_0001", "The customer has not authorized utility data access"),
    ("NO_MISSING_FIELDS", "SERV_0005", "Partner needs configuration for fields: Tariff"),
    ("DOCUMENTS_SIGNED", "DOCS_0002", "Enrollment documents are not signed"),
    ("ADDRESS", "SERV_0007", "The service address could not be verified"),
)
LEAP_ACTIONS: tuple[tuple[str, str, str], ...] = (
    ("IS_ASSIGNED_TO_A_RESOURCE", "LEAP_0001", "This meter is not assigned to a resource yet"),
    ("HAS_NOMINATIONS", "LEAP_0002", "This meter does not have nominations set"),
    ("HAS_MARKET_REGISTRATION", "LEAP_0003", "Market registration is pending"),
)
FIRST_NAMES = ("Ana", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jamal")
LAST_NAMES = ("Nguyen", "Garcia", "Smith", "Okafor", "Kowalski", "Haddad", "Lee", "Moreau")
STREETS = ("Oak", "Maple", "Cedar", "Pine", "Elm", "Lake", "Hill", "Sunset", "River", "Park")
STREET_KINDS = ("St", "Ave", "Blvd", "Rd", "Ln", "Way")
COMPANIES = ("Acme Cold Storage", "Bluebird Foods", "Summit Logistics", "Harbor Schools")
DEVICE_MAKERS = (
    ("BATTERY", "Tesla", "Powerwall 3"),
    ("BATTERY", "Enphase", "IQ Battery 5P"),
    ("SMART_THERMOSTAT", "ecobee", "Premium"),
    ("EV_CHARGER", "ChargePoint", "Home Flex"),
    ("HEAT_PUMP", "Mitsubishi", "Hyper-Heat"),
)
CUSTOMER_GROUPS = ("", "Residential Pilot", "Fleet West", "Schools_2025", "Grocers")
TAGS = ("pilot", "fleet", "priority", "solar", "wave-2")
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
