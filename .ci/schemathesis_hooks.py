"""Schemathesis hooks for `.ci/run`: two narrow adjustments, each to a rule that is right
in the API and that the generated data would otherwise break on purpose or by chance.

1. Whole floats. In a JSON body schemathesis also spells an integer as a float (`4.0` for
   `4`): JSON Schema counts them as the same integer. The API reads ids as i64 and refuses
   `4.0` with a 400 naming the field, a decision pinned by `lifecycle-jobs`' own tests
   (`an_out_of_range_integer_names_its_field`): a producer that sends a float for an id has
   a bug worth hearing about. So whole floats are written back as integers; a fraction
   (`0.5`), which no integer schema admits, is left alone and still refused.
2. Cross-field rules that JSON Schema cannot state: a deactivated user's records do not go to
   that same user (`reassign_to`, `reassign_contacts_to` differ from `user_id`) and records
   move between two users (`to_user_id` differs from `from_user_id`). A positive case that
   draws the same id twice is given the next id instead; every other 400 still fails.
3. A request time (`requested_at`) is checked against the service's clock: at most 5 minutes
   ahead, at most 35 days back. A date-time schema cannot say "near now", so a positive case
   carrying one gets the present instead; negative cases keep what was drawn.
"""

from datetime import datetime, timezone

import schemathesis
from schemathesis import GenerationMode

MAX_I64 = 2**63 - 1

# (the field that must differ, the field it must differ from)
DIFFERENT = [
    ("reassign_to", "user_id"),
    ("reassign_contacts_to", "user_id"),
    ("to_user_id", "from_user_id"),
]


def _integers(value):
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    if isinstance(value, dict):
        return {key: _integers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integers(item) for item in value]
    return value


@schemathesis.hook
def map_case(context, case):
    if not isinstance(case.body, (dict, list)):
        return case
    case.body = _integers(case.body)
    if case.meta is not None and case.meta.generation.mode != GenerationMode.POSITIVE:
        return case
    if isinstance(case.body, dict):
        if "requested_at" in case.body and case.body["requested_at"] is not None:
            case.body["requested_at"] = datetime.now(timezone.utc).isoformat()
        for field, other in DIFFERENT:
            value, against = case.body.get(field), case.body.get(other)
            if isinstance(value, int) and value == against and not isinstance(value, bool):
                case.body[field] = value + 1 if value < MAX_I64 else value - 1
    return case
