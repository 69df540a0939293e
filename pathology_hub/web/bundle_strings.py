"""Every string the browser bundles show, translated server-side and passed in their config.

Keys match viewer/src/viewer/strings.js and viewer/src/upload/strings.js (the English fallbacks).
"""

from __future__ import annotations

from flask_babel import gettext as _


def viewer_strings() -> dict[str, str]:
    return {
        'zoomIn': _('Zoom in'),
        'zoomOut': _('Zoom out'),
        'home': _('Fit to screen'),
        'rotateLeft': _('Rotate 90° left'),
        'rotateRight': _('Rotate 90° right'),
        'rotation': _('Rotation'),
        'resetRotation': _('Reset rotation'),
        'fullscreen': _('Full screen'),
        'exitFullscreen': _('Exit full screen'),
        'compare': _('Side by side'),
        'compareWith': _('Compare with'),
        'sync': _('Synchronise'),
        'copyLink': _('Copy link'),
        'linkCopied': _('Link copied'),
        'copyFailed': _('Could not copy the link'),
        'adjustments': _('Image adjustments'),
        'brightness': _('Brightness'),
        'contrast': _('Contrast'),
        'gamma': _('Gamma'),
        'resetAdjustments': _('Reset'),
        'slides': _('Slides'),
        'metadata': _('Slide information'),
        'associatedImages': _('Associated images'),
        'noMetadata': _('No metadata'),
        'magnification': _('Magnification'),
        'presets': _('Magnification presets'),
        'storageUnavailable': _('Image storage is temporarily unavailable. Retrying…'),
        'tiling': _('Processing'),
        'slideTiling': _('This slide is still being processed; tiles appear as they are rendered.'),
        'loading': _('Loading…'),
        'loadFailed': _('The slide could not be loaded.'),
        'togglePanel': _('Side panel'),
        'name': _('Name'),
        'stain': _('Stain'),
        'dimensions': _('Dimensions'),
        'resolution': _('Resolution'),
        'objectivePower': _('Objective power'),
        'noSlides': _('This case has no slides.'),
        'scaleBar': _('Scale bar'),
    }


def upload_strings() -> dict[str, str]:
    return {
        'dropHere': _('Drop slide files here'),
        'or': _('or'),
        'chooseFiles': _('Choose files'),
        'queued': _('Waiting…'),
        'verifying': _('Verifying… {percent}%'),
        'resuming': _('Resuming previous upload…'),
        'uploading': _('{percent}% · {speed} · {remaining} left'),
        'uploadingNoEstimate': _('{percent}%'),
        'paused': _('Paused at {percent}%'),
        'pause': _('Pause'),
        'resume': _('Resume'),
        'remove': _('Remove'),
        'processing': _('Processing on the server…'),
        'done': _('Uploaded'),
        'failed': _('Upload failed'),
        'networkError': _('Network error — the upload will resume when you press Resume.'),
        'hashFailed': _('Could not read the file'),
        'secondsLeft': _('{s} s'),
        'minutesLeft': _('{m} min {s} s'),
        'hoursLeft': _('{h} h {m} min'),
        'status_ready': _('Ready'),
        'status_done': _('Ready'),
        'status_failed': _('Processing failed'),
        'status_error': _('Processing failed'),
    }
