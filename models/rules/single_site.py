"""The single-site rules of docs/rules.md, one SQL query each, over a node's tables.

Every query reads the views ``settlements`` and ``lines`` (the analytic store's columns), the
knowledge base tables of :mod:`fedrisk.models.rules.kbtables` and ``rejects`` (rows refused
at ingest), and returns one row per flagged settlement: ``site_id, settlement_id, severity,
evidence`` (JSON). The evidence names the item, the restriction and the value that broke it,
taken from the settlement's first offending line; it never holds a raw identifier (the store
has none).

Parameters come from a validated rule pack (typed integers and decimals), so formatting them
into the SQL text is safe; DuckDB needs window frame offsets as constants anyway.
"""

from __future__ import annotations

from collections.abc import Callable

from fedrisk.models.rules.pack import RuleConfig

# A line's catalogue: drugs.csv for drug lines, services.csv for services and consumables.
_LINE_ITEMS = """
    lines l
    JOIN kb_items k ON k.code = l.item_code
     AND k.kind = CASE l.item_type WHEN 'drug' THEN 'drug' ELSE 'service' END
    JOIN settlements s ON s.site_id = l.site_id AND s.settlement_id = l.settlement_id
"""


def gender_conflict(rule: RuleConfig) -> str:
    return f"""
    SELECT l.site_id, l.settlement_id, '{rule.severity}' AS severity,
        arg_min(json_object(
            'line_no', l.line_no, 'item_code', l.item_code, 'item_name', k.name,
            'restriction', 'gender=' || k.gender, 'patient_gender', s.gender),
            l.line_no) AS evidence
    FROM {_LINE_ITEMS}
    WHERE k.gender IS NOT NULL AND k.gender <> s.gender
    GROUP BY l.site_id, l.settlement_id
    """


def age_conflict(rule: RuleConfig) -> str:
    return f"""
    SELECT l.site_id, l.settlement_id, '{rule.severity}' AS severity,
        arg_min(json_object(
            'line_no', l.line_no, 'item_code', l.item_code, 'item_name', k.name,
            'restriction', CASE WHEN s.age < k.min_age THEN 'min_age=' || k.min_age
                                ELSE 'max_age=' || k.max_age END,
            'patient_age', s.age), l.line_no) AS evidence
    FROM {_LINE_ITEMS}
    WHERE (k.min_age IS NOT NULL OR k.max_age IS NOT NULL)
      AND (s.age < k.min_age OR s.age > k.max_age)
    GROUP BY l.site_id, l.settlement_id
    """


def over_quantity(rule: RuleConfig) -> str:
    """Per (settlement, item): units and days of supply of a drug, units a stay day of a service."""
    return f"""
    WITH keyed AS (
        SELECT l.site_id, l.settlement_id, l.item_code, l.item_type, l.line_no, l.quantity,
            coalesce(l.days_supply, l.quantity * d.days_per_unit) AS days,
            hash(l.site_id, l.settlement_id, l.item_code) AS h
        FROM lines l LEFT JOIN kb_drugs d ON l.item_type = 'drug' AND d.code = l.item_code
    ), repeated AS (
        -- an item on several lines of one settlement is rare: only those lines are summed
        -- (a hash collision only sends a few more lines through the exact grouping)
        SELECT h FROM keyed GROUP BY h HAVING count(*) > 1
    ), per_item AS (
        SELECT site_id, settlement_id, item_code, item_type, line_no, quantity AS units, days
        FROM keyed WHERE h NOT IN (SELECT h FROM repeated)
        UNION ALL
        SELECT site_id, settlement_id, item_code, any_value(item_type), min(line_no),
            sum(quantity), sum(days)
        FROM keyed WHERE h IN (SELECT h FROM repeated)
        GROUP BY site_id, settlement_id, item_code
    ), drug_over AS (
        SELECT p.site_id, p.settlement_id, p.line_no, json_object(
            'item_code', p.item_code,
            'restriction', CASE WHEN p.units > d.max_units THEN 'max_units=' || d.max_units
                                ELSE 'max_days_supply=' || d.max_days_supply END,
            'value', CASE WHEN p.units > d.max_units THEN p.units ELSE p.days END,
            'units', p.units, 'days_supply', p.days) AS evidence
        FROM per_item p JOIN kb_drugs d ON p.item_type = 'drug' AND d.code = p.item_code
        WHERE p.units > d.max_units OR p.days > d.max_days_supply
    ), service_candidates AS (
        -- a stay has at least one day, so only units above one day's limit can break it
        SELECT p.*, v.max_per_day
        FROM per_item p JOIN kb_services v ON p.item_type <> 'drug' AND v.code = p.item_code
        WHERE p.units > v.max_per_day
    ), service_over AS (
        SELECT c.site_id, c.settlement_id, c.line_no, json_object(
            'item_code', c.item_code,
            'restriction', 'max_per_day=' || c.max_per_day || ' x ' || t.stay_days || ' stay days',
            'value', c.units, 'units', c.units, 'stay_days', t.stay_days) AS evidence
        FROM service_candidates c
        JOIN (
            SELECT site_id, settlement_id,
                CASE WHEN visit_type = 'inpatient' AND discharge_time IS NOT NULL
                     THEN greatest(1, date_diff('day', admit_time::DATE, discharge_time::DATE))
                     ELSE 1 END AS stay_days
            FROM settlements
        ) t ON t.site_id = c.site_id AND t.settlement_id = c.settlement_id
        WHERE c.units > c.max_per_day * t.stay_days
    )
    SELECT site_id, settlement_id, '{rule.severity}' AS severity,
        arg_min(evidence, line_no) AS evidence
    FROM (SELECT * FROM drug_over UNION ALL SELECT * FROM service_over)
    GROUP BY site_id, settlement_id
    """


def indication_mismatch(rule: RuleConfig) -> str:
    """A drug with indications on a settlement whose diagnoses match none of its prefixes."""
    return f"""
    WITH candidates AS (
        SELECT l.site_id, l.settlement_id, l.line_no, l.item_code, d.indications,
            s.diagnosis_codes
        FROM lines l
        JOIN kb_drugs d ON d.code = l.item_code AND d.indications <> ''
        JOIN settlements s ON s.site_id = l.site_id AND s.settlement_id = l.settlement_id
        WHERE l.item_type = 'drug' AND s.diagnosis_codes <> ''
    ), pairs AS (
        -- a drug and a diagnosis list recur on many lines: decide each pair once
        SELECT DISTINCT item_code, diagnosis_codes FROM candidates
    ), matched AS (
        SELECT DISTINCT p.item_code, p.diagnosis_codes
        FROM (
            SELECT item_code, diagnosis_codes, unnest(string_split(diagnosis_codes, '|')) AS code
            FROM pairs
        ) p
        JOIN kb_indications i ON i.code = p.item_code AND starts_with(p.code, i.prefix)
    ), mismatched AS (
        SELECT * FROM pairs
        EXCEPT
        SELECT * FROM matched
    )
    SELECT c.site_id, c.settlement_id, '{rule.severity}' AS severity,
        arg_min(json_object(
            'line_no', c.line_no, 'item_code', c.item_code,
            'restriction', 'indications=' || c.indications,
            'diagnosis_codes', c.diagnosis_codes), c.line_no) AS evidence
    FROM candidates c
    SEMI JOIN mismatched m
      ON m.item_code = c.item_code AND m.diagnosis_codes = c.diagnosis_codes
    GROUP BY c.site_id, c.settlement_id
    """


def interaction(rule: RuleConfig) -> str:
    """Two drug lines of one settlement forming a pair of kb/interactions.csv (either order);
    the flag takes the most severe pair."""
    del rule  # severity comes from the knowledge base
    return """
    WITH drugs AS (
        SELECT site_id, settlement_id, line_no, item_code FROM lines
        WHERE item_type = 'drug' AND item_code IN (SELECT drug_a FROM kb_interactions)
    ), pairs AS (
        SELECT a.site_id, a.settlement_id, k.severity,
            list_position(['info', 'warn', 'block'], k.severity) * 1000000 - a.line_no AS rank,
            json_object(
                'line_no', a.line_no, 'item_code', a.item_code,
                'other_line_no', b.line_no, 'other_item_code', b.item_code,
                'restriction', 'not with ' || b.item_code,
                'kb_severity', k.severity) AS evidence
        FROM drugs a
        JOIN drugs b
          ON b.site_id = a.site_id AND b.settlement_id = a.settlement_id AND a.line_no < b.line_no
        JOIN kb_interactions k ON k.drug_a = a.item_code AND k.drug_b = b.item_code
    )
    SELECT site_id, settlement_id, arg_max(severity, rank) AS severity,
        arg_max(evidence, rank) AS evidence
    FROM pairs
    GROUP BY site_id, settlement_id
    """


def duplicate_trace_code(rule: RuleConfig) -> str:
    """A trace code on more than one line of this site's store."""
    return f"""
    WITH maybe AS (
        -- grouping 64-bit hashes is much cheaper than grouping the strings; a collision only
        -- adds a candidate, which the exact grouping below drops
        SELECT hash(trace_code) AS h FROM lines WHERE trace_code IS NOT NULL
        GROUP BY h HAVING count(*) > 1
    ), candidates AS (
        SELECT * FROM lines WHERE hash(trace_code) IN (SELECT h FROM maybe)
    ), repeated AS (
        SELECT trace_code, count(*) AS times, list(DISTINCT settlement_id) AS settlements
        FROM candidates
        GROUP BY trace_code HAVING count(*) > 1
    )
    SELECT l.site_id, l.settlement_id, '{rule.severity}' AS severity,
        arg_min(json_object(
            'line_no', l.line_no, 'item_code', l.item_code, 'trace_code', l.trace_code,
            'restriction', 'a box is settled once', 'times_settled', r.times,
            'other_settlements',
                list_filter(r.settlements, lambda x: x <> l.settlement_id)[1:10]), l.line_no
        ) AS evidence
    FROM candidates l JOIN repeated r ON r.trace_code = l.trace_code
    GROUP BY l.site_id, l.settlement_id
    """


def batch_prescribing(rule: RuleConfig) -> str:
    """One doctor, one monitored drug, ≥ N patients whose order times lie within W seconds.

    For each order, the window starting at it counts distinct patients; an order is flagged when
    some qualifying window starting at most W seconds earlier contains it.
    """
    least = rule.integer("min_patients")
    window = rule.integer("window_seconds")
    group = "PARTITION BY site_id, doctor, item_code ORDER BY order_time"
    return f"""
    WITH orders AS (
        SELECT s.site_id, s.settlement_id, s.doctor_pseudonym AS doctor,
            s.patient_pseudonym AS patient, l.item_code, l.order_time,
            hash(s.site_id, s.doctor_pseudonym, l.item_code) AS k
        FROM lines l
        JOIN kb_drugs d ON d.code = l.item_code AND d.monitored
        JOIN settlements s ON s.site_id = l.site_id AND s.settlement_id = l.settlement_id
        WHERE l.item_type = 'drug' AND s.doctor_status = 'ok'
    ), hot AS (
        -- N patients in a window are at least N orders in it, so only a doctor's drug with N
        -- orders within W seconds somewhere can qualify; few do, and the costly distinct
        -- count below runs on those alone. Groups are keyed by a hash: a collision merges
        -- two groups here, which can add a candidate but never hide one.
        SELECT DISTINCT k FROM (
            SELECT k, order_time,
                lead(order_time, {max(least - 1, 0)}) OVER (PARTITION BY k ORDER BY order_time)
                    AS nth
            FROM orders
        ) WHERE nth <= order_time + INTERVAL {window} SECOND
    ), windows AS (
        SELECT *, count(DISTINCT patient) OVER (
            {group} RANGE BETWEEN CURRENT ROW AND INTERVAL {window} SECOND FOLLOWING
        ) AS patients
        FROM orders WHERE k IN (SELECT k FROM hot)
    ), members AS (
        SELECT *, max(CASE WHEN patients >= {least} THEN patients END) OVER (
            {group} RANGE BETWEEN INTERVAL {window} SECOND PRECEDING AND CURRENT ROW
        ) AS group_patients
        FROM windows
    )
    SELECT site_id, settlement_id, '{rule.severity}' AS severity,
        arg_min(json_object(
            'item_code', item_code, 'doctor', doctor, 'order_time', order_time,
            'restriction', 'fewer than {least} patients within {window} s',
            'patients', group_patients), order_time) AS evidence
    FROM members WHERE group_patients IS NOT NULL
    GROUP BY site_id, settlement_id
    """


def split_admission(rule: RuleConfig) -> str:
    """Two inpatient stays of one patient with one principal diagnosis, the later admitted
    0..D days after the earlier's discharge; both are flagged."""
    days = rule.integer("window_days")
    return f"""
    WITH stays AS (
        SELECT site_id, settlement_id, patient_pseudonym AS patient, principal_diagnosis AS dx,
            admit_time, discharge_time
        FROM settlements
        WHERE visit_type = 'inpatient' AND discharge_time IS NOT NULL
          AND principal_diagnosis IS NOT NULL
    ), pairs AS (
        SELECT e.site_id, e.settlement_id AS earlier, l.settlement_id AS later, e.dx,
            date_diff('second', e.discharge_time, l.admit_time) / 86400.0 AS gap_days
        FROM stays e
        JOIN stays l ON l.site_id = e.site_id AND l.patient = e.patient AND l.dx = e.dx
          AND l.settlement_id <> e.settlement_id
        WHERE l.admit_time >= e.discharge_time
          AND l.admit_time <= e.discharge_time + INTERVAL {days} DAY
    ), sides AS (
        SELECT site_id, earlier AS settlement_id, later AS other, 'earlier' AS stay, dx, gap_days
        FROM pairs
        UNION ALL
        SELECT site_id, later, earlier, 'later', dx, gap_days FROM pairs
    )
    SELECT site_id, settlement_id, '{rule.severity}' AS severity,
        arg_min(json_object(
            'principal_diagnosis', dx, 'this_stay', stay, 'other_settlement_id', other,
            'restriction', 'readmission gap > {days} days', 'gap_days', round(gap_days, 2)),
            gap_days) AS evidence
    FROM sides
    GROUP BY site_id, settlement_id
    """


def data_quality(rule: RuleConfig) -> str:
    """Settlements named by a row refused at ingest, and settlements without a real doctor.

    The evidence is the settlement's own refused row when there is one (the root cause), else
    its first refused line. ``rejects`` holds only rows that name a settlement (the caller
    leaves out rows whose settlement id is unknown or withheld: there is nothing to flag, the
    rejects file keeps them).
    """
    return f"""
    WITH faults AS (
        SELECT site_id, settlement_id, 0 AS rank, json_object(
            'field', 'doctor_id', 'restriction', 'the prescriber is a person',
            'value', CASE doctor_status WHEN 'unknown' THEN 'UNKNOWN' ELSE '(empty)' END
        ) AS evidence
        FROM settlements
        WHERE doctor_status = 'unknown'
           OR (doctor_status = 'missing' AND site_type IN ('hospital', 'clinic'))
        UNION ALL
        SELECT site_id, settlement_id,
            row_number() OVER (ORDER BY file <> 'settlements.csv', file, "row") AS rank,
            json_object('file', file, 'row', "row", 'field', field, 'reason', reason)
        FROM rejects
    )
    SELECT site_id, settlement_id, '{rule.severity}' AS severity,
        arg_min(evidence, rank) AS evidence
    FROM faults
    GROUP BY site_id, settlement_id
    """


QUERIES: dict[str, Callable[[RuleConfig], str]] = {
    "gender_conflict": gender_conflict,
    "age_conflict": age_conflict,
    "over_quantity": over_quantity,
    "indication_mismatch": indication_mismatch,
    "interaction": interaction,
    "duplicate_trace_code": duplicate_trace_code,
    "batch_prescribing": batch_prescribing,
    "split_admission": split_admission,
    "data_quality": data_quality,
}
