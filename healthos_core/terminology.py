"""Code systems and the codes HealthOS reasons over (LOINC vital signs and labs).

Sources: LOINC 2.77 (Regenstrief); the FHIR R4 vital-signs profile codes
(http://hl7.org/fhir/R4/observation-vitalsigns.html).
"""

from __future__ import annotations

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
CVX = "http://hl7.org/fhir/sid/cvx"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
#: HL7 v3 ActCode: an Encounter's ``class`` (AMB, EMER, IMP).
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
#: HL7 organization-type: an Organization's ``type`` (``prov``, ``pay`` …).
ORGANIZATION_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
#: HealthOS local codes, for measurements with no LOINC code (e.g. "mechanical ventilation").
LOCAL = "https://healthos.dev/fhir/CodeSystem/local"

# Vital signs (FHIR vital-signs profile).
RESPIRATORY_RATE = "9279-1"
HEART_RATE = "8867-4"
OXYGEN_SATURATION = "2708-6"  # Oxygen saturation in Arterial blood (SaO2)
OXYGEN_SATURATION_PULSE_OXIMETRY = "59408-5"  # SpO2
BLOOD_PRESSURE_PANEL = "85354-9"
BLOOD_PRESSURE_PANEL_SYNTHEA = "55284-4"
SYSTOLIC_BP = "8480-6"
DIASTOLIC_BP = "8462-4"
MEAN_BP = "8478-0"
INVASIVE_SYSTOLIC_BP = "76215-3"  # Invasive Systolic blood pressure
INVASIVE_DIASTOLIC_BP = "76213-8"
INVASIVE_MEAN_BP = "76214-6"
BODY_TEMPERATURE = "8310-5"
ORAL_TEMPERATURE = "8331-1"
BODY_WEIGHT = "29463-7"
BODY_HEIGHT = "8302-2"
# Consciousness and oxygen.
GCS_TOTAL = "9269-2"
LEVEL_OF_RESPONSIVENESS = "67775-7"  # ACVPU/AVPU, value codes A, C, V, P, U
INHALED_OXYGEN_CONCENTRATION = "3150-0"  # FiO2, % or fraction
INHALED_OXYGEN_FLOW_RATE = "3151-8"  # L/min
MECHANICAL_VENTILATION = "mech-vent"  # LOCAL: 1 = on a ventilator
URINE_OUTPUT = "9187-6"
# Labs.
CREATININE = "2160-0"
LACTATE = "2524-7"
WBC = "6690-2"

#: Codes that carry a systolic blood pressure, directly or as a panel component.
SYSTOLIC_CODES = frozenset({SYSTOLIC_BP, INVASIVE_SYSTOLIC_BP})
SPO2_CODES = frozenset({OXYGEN_SATURATION, OXYGEN_SATURATION_PULSE_OXIMETRY})
TEMPERATURE_CODES = frozenset({BODY_TEMPERATURE, ORAL_TEMPERATURE})
BP_PANEL_CODES = frozenset({BLOOD_PRESSURE_PANEL, BLOOD_PRESSURE_PANEL_SYNTHEA})

# Added for the SIRS, KDIGO and LACE scorers.
#: ICD-10 (WHO); the ICD-10-CM system is :data:`ICD10CM`.
ICD10 = "http://hl7.org/fhir/sid/icd-10"
#: Code systems whose codes are ICD-10 diagnosis codes (read by the Charlson index).
ICD10_SYSTEMS = frozenset({ICD10CM, ICD10})
PACO2 = "2019-8"  # Carbon dioxide [Partial pressure] in Arterial blood (mm[Hg])
