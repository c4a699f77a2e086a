"""Azure service tags that may appear as NSG source prefixes, and how NSG Guard classifies them.

Service tags are Microsoft-controlled address sets. Product rule (docs §2.3): they count as non-public,
except ``AzureCloud`` and its regional forms (any Azure customer can hold those addresses), which are
**broad** public exposure. A token that is neither a tag listed here, a CIDR/IP, nor one of the keywords
is an input error — extend the list with the ``EXTRA_SERVICE_TAGS`` setting rather than guessing.
"""

from __future__ import annotations

# Names as published in Microsoft Learn, "Virtual network service tags" (the NSG-usable ones).
# Regional forms (``Storage.WestEurope``) are accepted for every tag listed here.
SERVICE_TAGS: frozenset[str] = frozenset(
    name.lower()
    for name in """
    ActionGroup ApiManagement AppConfiguration AppService AppServiceManagement
    ApplicationInsightsAvailability AutonomousDevelopmentPlatform AzureActiveDirectory
    AzureActiveDirectoryDomainServices AzureAdvancedThreatProtection AzureArcInfrastructure
    AzureAttestation AzureBackup AzureBotService AzureCloud AzureCognitiveSearch AzureConnectors
    AzureContainerAppsService AzureContainerRegistry AzureCosmosDB AzureDatabricks
    AzureDataExplorerManagement AzureDataLake AzureDevOps AzureDevSpaces AzureDeviceUpdate
    AzureDigitalTwins AzureEventGrid AzureEventHub AzureFrontDoor.Backend AzureFrontDoor.FirstParty
    AzureFrontDoor.Frontend AzureHealthcareAPIs AzureInformationProtection AzureIoTHub AzureKeyVault
    AzureLoadBalancer AzureLoadTestingInstanceManagement AzureMachineLearning
    AzureMachineLearningInference AzureManagedGrafana AzureMonitor AzureOpenDatasets
    AzurePlatformDNS AzurePlatformIMDS AzurePlatformLKM AzureResourceManager AzureSecurityCenter
    AzureSentinel AzureSignalR AzureSiteRecovery AzureSphere AzureSpringCloud AzureStack
    AzureTrafficManager AzureUpdateDelivery AzureWebPubSub BatchNodeManagement ChaosStudio
    CognitiveServicesFrontend CognitiveServicesManagement DataFactory DataFactoryManagement
    Dynamics365BusinessCentral Dynamics365ForMarketingEmail EOPExternalPublishedIPs EventHub
    GatewayManager GenevaActions GuestAndHybridManagement HDInsight Internet KustoAnalytics
    LogicApps LogicAppsManagement M365ManagementActivityApi M365ManagementActivityApiWebhook
    Marketplace MicrosoftAzureFluidRelay MicrosoftCloudAppSecurity MicrosoftContainerRegistry
    MicrosoftDefenderForEndpoint MicrosoftPurviewPolicyDistribution OneDsCollector PowerBI
    PowerPlatformInfra PowerPlatformPlex PowerQueryOnline SCCservice Scuba SerialConsole ServiceBus
    ServiceFabric Sql SqlManagement Storage StorageMover StorageSyncService VideoIndexer
    VirtualNetwork WindowsAdminCenter WindowsVirtualDesktop
    """.split()
)

# Tags whose addresses any Azure customer can hold: treated as broad public exposure.
PUBLIC_BROAD_TAGS: frozenset[str] = frozenset({"azurecloud"})


def tag_base(token: str) -> str:
    """``AzureCloud.WestEurope`` -> ``azurecloud``; ``AzureFrontDoor.Backend`` stays whole (it is a tag)."""
    low = token.lower()
    if low in SERVICE_TAGS:
        return low
    base, _, _region = low.rpartition(".")
    return base or low


def is_service_tag(token: str, extra: frozenset[str] = frozenset()) -> bool:
    low = token.lower()
    if low in SERVICE_TAGS or low in extra:
        return True
    base, dot, region = low.rpartition(".")
    return bool(dot and region and region.isalnum() and (base in SERVICE_TAGS or base in extra))


def is_public_broad_tag(token: str) -> bool:
    return tag_base(token) in PUBLIC_BROAD_TAGS
