"""What each channel can show, used by the core to decide between buttons and numbered menus."""

from bot.channels.base import Capabilities

CAPABILITIES: dict[str, Capabilities] = {
    "telegram": Capabilities(buttons=True, max_buttons=100, text_limit=4096),
    "web": Capabilities(buttons=True, max_buttons=100, text_limit=4096),
    "zalo_oa": Capabilities(buttons=True, max_buttons=5, text_limit=2000),
    "zalo_bot": Capabilities(buttons=False, max_buttons=0, text_limit=2000),
}


def uses_numbered_menu(channel: str, button_count: int) -> bool:
    caps = CAPABILITIES.get(channel)
    if caps is None or not caps.buttons:
        return button_count > 0
    return button_count > caps.max_buttons
