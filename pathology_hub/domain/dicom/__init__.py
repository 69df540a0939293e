"""DICOM identity of the platform's cases, slides and annotations (shared by DICOMweb, DICOM WSI export,
DICOM annotations and FHIR ImagingStudy)."""
