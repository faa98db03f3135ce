"""The descriptive part of a Meter Details v2 record (customer, device, site, utility).

Derived only from (seed, index) and the meter's region/utility/zone, so it never needs
storing. Values respect the patterns and bounds of Leap's definitions.
"""

from __future__ import annotations

import hashlib
import random
from datetime import date, timedelta
from typing import Any

from app.leap_sim import regions as R

JSON = dict[str, Any]


def _rng(seed: int, index: int) -> random.Random:
    digest = hashlib.blake2b(f"{seed}:rich:{index}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _address(rnd: random.Random, utility: R.Utility) -> JSON:
    city, zip3 = rnd.choice(utility.cities)
    street = f"{rnd.randint(1, 9999)} {rnd.choice(R.STREETS)} {rnd.choice(R.STREET_KINDS)}"
    out: JSON = {"street_1": street}
    if rnd.random() < 0.25:
        out["street_2"] = f"Unit {rnd.randint(1, 400)}"
    out.update(
        postal_code=f"{zip3}{rnd.randint(0, 99):02d}",
        city=city,
        state_or_province_code=utility.state,
        country_code="US",
    )
    return out


def render_meter(
    seed: int,
    index: int,
    region: R.Region,
    utility: R.Utility,
    load_zone: str,
    classification: str,
    meter_type: str,
) -> JSON:
    rnd = _rng(seed, index)
    first, last = rnd.choice(R.FIRST_NAMES), rnd.choice(R.LAST_NAMES)
    customer = _address(rnd, utility)
    customer.update(
        end_customer_name=f"{first} {last}",
        end_customer_email=f"{first.lower()}.{last.lower()}{index}@example.com",
        end_customer_phone_number=f"({rnd.randint(200, 989)}) 555-{rnd.randint(0, 9999):04d}",
        partner_offering_name="Grid Rewards",
        partner_offering_date=(date(2023, 1, 1) + timedelta(days=rnd.randint(0, 700))).isoformat(),
        is_in_wholesale_capacity_market=rnd.random() < 0.1,
    )
    if classification == "COMMERCIAL":
        customer["end_customer_company_name"] = rnd.choice(R.COMPANIES)
        customer["end_customer_title"] = "Facilities"
    if rnd.random() < 0.15:
        customer["billing"] = _address(rnd, utility)
    if region.name == "ISONE":
        customer["dispatch_option"] = rnd.choice(("DAILY", "TARGETED"))
    out: JSON = {"customer": customer}

    kind, maker, model = rnd.choice(R.DEVICE_MAKERS)
    install = date(2019, 1, 1) + timedelta(days=rnd.randint(0, 2000))
    serial = f"SN-{index:08d}-{rnd.randint(0, 0xFFFF):04X}"
    if meter_type == "DEVICE" or kind == "BATTERY":
        device: JSON = {
            "device_type": kind,
            "device_serial_number": serial,
            "device_model": model,
            "device_manufacturer": maker,
            "install_date": install.isoformat(),
        }
        if kind == "BATTERY":
            power = round(rnd.uniform(3.0, 11.5), 3)
            device.update(
                battery_power_capacity_kw=power,
                battery_energy_capacity_kwh=round(power * 2, 3),
                battery_duration_hours=2,
                permission_to_operate_date=(install + timedelta(days=30)).isoformat(),
            )
        out["device"] = device
    site_device: JSON = {
        "device_type": kind,
        "model": model,
        "manufacturer": maker,
        "serial_number": serial,
    }
    if kind == "BATTERY":
        site_device.update(
            energy_capacity_kwh=13.5,
            power_capacity_kw=5.0,
            energy_capacity_duration_hours=3,
            battery_max_state_of_charge_percentage=95,
            battery_min_state_of_charge_percentage=10,
            # Leap's current name (formerly `pv_connected`)
            is_connected_to_solar=rnd.random() < 0.7,
        )
    out["site"] = {
        "load_zone": load_zone,
        "number_of_devices": 1,
        "on_site_fossil_generator": False,
        "renewable_generator": rnd.random() < 0.4,
        "site_devices": [site_device],
    }
    if region.name == "CAISO":
        out["caiso"] = {
            "is_receiving_sgip_funding": rnd.random() < 0.2,
            "nem_type": rnd.choice(("NEM2", "NEM3")),
        }
    elif region.name == "ISONE":
        out["isone"] = {"in_connected_solutions": rnd.random() < 0.5}
    elif region.name == "NYISO":
        out["nyiso"] = {
            "cbl_method": rnd.choice(("AVERAGE_DAY", "WEATHER_ADJUSTED")),
            "company_type": "INDIVIDUAL_OR_SOLE_PROPRIETOR",
        }
    account = f"{rnd.randint(10**9, 10**10 - 1)}"
    out["utility"] = {
        "utility_name": utility.name,
        "load_serving_entity": utility.name,
        "electric_service_account_number": account,
        "tariff": rnd.choice(utility.tariffs),
        "utility_meter_serial_number": f"UM{rnd.randint(10**7, 10**8 - 1)}",
        "bill_service_agreement_number": account,
        "bill_customer_account_number": f"{rnd.randint(10**8, 10**9 - 1)}",
    }
    return out
