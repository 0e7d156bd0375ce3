"""The built-in weather tools, ``get_forecast`` and ``get_alerts``: one plugin, ``weather``, on the
National Weather Service API, declared as any plugin is (docs/plugins.md) and registered by the
entry point ``weather = skywarden.tools.weather:weather`` of the group ``skywarden.tools``."""

from skywarden.tools.weather.alerts import Alert, Alerts, get_alerts
from skywarden.tools.weather.forecast import Forecast, Period, get_forecast
from skywarden.tools.weather.nws import WeatherSettings, weather

__all__ = ["Alert", "Alerts", "Forecast", "Period", "WeatherSettings", "get_alerts", "get_forecast", "weather"]
